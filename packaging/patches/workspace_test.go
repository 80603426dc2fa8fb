package patches

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewEditRefresh(t *testing.T) {
	needTools(t)
	ctx := context.Background()
	base := lines(20, nil)
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"f.txt":               base,
		"patches/series":      "# site-revision: 2\nfirst.patch",
		"patches/first.patch": "First.\n" + unifiedDiff(t, "f.txt", base, lines(20, map[int]string{3: "three"})),
	})
	var out bytes.Buffer
	if err := NewPatch(ctx, root, "second", &out); err != nil {
		t.Fatal(err)
	}
	series, _ := os.ReadFile(filepath.Join(root, "patches", "series"))
	if string(series) != "# site-revision: 2\nfirst.patch\nsecond.patch\n" {
		t.Fatalf("series:\n%s", series)
	}
	if err := NewPatch(ctx, root, "second.patch", &out); err == nil {
		t.Fatal("a second patches:new of the same name succeeded")
	}
	work := WorkDir(root)
	// The workspace has the earlier patch applied; edit on top of it.
	writeFiles(t, work, map[string]string{
		"f.txt":   lines(20, map[int]string{3: "three", 10: "ten"}),
		"new.txt": "a new file\n",
	})
	if err := RefreshPatch(ctx, root, &out); err != nil {
		t.Fatal(err)
	}
	p, _ := os.ReadFile(filepath.Join(root, "patches", "second.patch"))
	if !strings.HasPrefix(string(p), "second.patch: say what") || !strings.Contains(string(p), "+ten") ||
		!strings.Contains(string(p), "+a new file") || strings.Contains(string(p), "+three") {
		t.Fatalf("refreshed patch holds more or less than the edit:\n%s", p)
	}
	var tbl bytes.Buffer
	res, err := Status(ctx, root, &tbl)
	if err != nil || len(res) != 2 || res[0].Class != Clean || res[1].Class != Clean {
		t.Fatalf("series after refresh: %v\n%s", err, tbl.String())
	}

	// Edit the first patch: its change is there, uncommitted; widen it and refresh.
	if err := EditPatch(ctx, root, "first.patch", &out); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(work, "f.txt")); string(b) != lines(20, map[int]string{3: "three"}) {
		t.Fatalf("workspace for first.patch:\n%s", b)
	}
	writeFiles(t, work, map[string]string{"f.txt": lines(20, map[int]string{3: "three", 4: "four"})})
	if err := RefreshPatch(ctx, root, &out); err != nil {
		t.Fatal(err)
	}
	p, _ = os.ReadFile(filepath.Join(root, "patches", "first.patch"))
	if !strings.HasPrefix(string(p), "First.\n") || !strings.Contains(string(p), "+three\n+four\n") {
		t.Fatalf("first.patch after refresh:\n%s", p)
	}

	// Conflict markers are never written into a patch.
	writeFiles(t, work, map[string]string{"f.txt": "<<<<<<< ours\nx\n=======\ny\n>>>>>>> theirs\n"})
	if err := RefreshPatch(ctx, root, &out); err == nil || !strings.Contains(err.Error(), "conflict markers remain in f.txt") {
		t.Fatalf("refresh with markers: %v", err)
	}
}

func TestSeriesRejectsHostileInput(t *testing.T) {
	for _, s := range []string{
		"../outside.patch\n", "/etc/passwd\n", "a/../../b.patch\n", "x.patch -R\n", "x.patch -p99\n",
		"x.patch\nx.patch\n", "series\n", "# site-revision: 0\n", "# site-revision: many\n",
	} {
		if _, err := ParseSeries([]byte(s)); err == nil {
			t.Errorf("series %q accepted", s)
		}
	}
	s, err := ParseSeries([]byte("# comment\n\n  a.patch   -p0  # trailing\nsub/b.diff\n"))
	if err != nil || len(s.Entries) != 2 || s.Entries[0] != (Entry{Name: "a.patch", Strip: 0, Line: 3}) || s.Entries[1].Strip != 1 {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := ParseSeries(bytes.Repeat([]byte("x"), maxSeries+1)); err == nil {
		t.Error("oversized series accepted")
	}
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"patches/series": "gone.patch\n"})
	var out bytes.Buffer
	res, err := Status(context.Background(), root, &out)
	if err == nil || len(res) != 1 || res[0].Class != Missing {
		t.Fatalf("missing patch file: %v %+v", err, res)
	}
}

// The series shipped in the tree is empty, so upstream's build is untouched.
func TestShippedSeriesIsEmpty(t *testing.T) {
	s, err := ReadSeries(filepath.Join("..", ".."))
	if err != nil || len(s.Entries) != 0 || s.Revision != 0 {
		t.Fatalf("patches/series: %+v %v", s, err)
	}
	if _, err := os.Stat(filepath.Join("..", "..", Dir, "series")); err != nil {
		t.Fatal(err)
	}
}
