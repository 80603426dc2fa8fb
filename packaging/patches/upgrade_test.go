package patches

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// upgradeTrees returns the current source with a series of five patches, one per
// action, and the files of a new source version.
func upgradeTrees(t *testing.T) (root string, newFiles map[string]string) {
	base := lines(30, nil)
	root = t.TempDir()
	writeFiles(t, root, map[string]string{
		"f.txt": base, "g.txt": base, "h.txt": base, "k.txt": base, "m.txt": base,
		"patches/series":        "keep.patch\nrefresh.patch\ndrop.patch\nmerge.patch\nrework.patch\n",
		"patches/keep.patch":    "Keep me.\n" + unifiedDiff(t, "f.txt", base, lines(30, map[int]string{5: "five"})),
		"patches/refresh.patch": "Moves in the new source.\n" + unifiedDiff(t, "g.txt", base, lines(30, map[int]string{15: "fifteen"})),
		"patches/drop.patch":    unifiedDiff(t, "h.txt", base, lines(30, map[int]string{15: "fifteen"})),
		// Lines 15 and 19 in one hunk: the new source's change to 17 is inside it.
		"patches/merge.patch":  unifiedDiff(t, "k.txt", base, lines(30, map[int]string{15: "fifteen", 19: "nineteen"})),
		"patches/rework.patch": unifiedDiff(t, "m.txt", base, lines(30, map[int]string{15: "site fifteen"})),
	})
	newFiles = map[string]string{
		"f.txt": base,
		"g.txt": "new\nlines\nabove\n" + base,
		"h.txt": lines(30, map[int]string{15: "fifteen"}),
		"k.txt": lines(30, map[int]string{17: "seventeen"}),
		"m.txt": lines(30, map[int]string{15: "upstream fifteen"}),
	}
	return root, newFiles
}

func checkUpgrade(t *testing.T, rep UpgradeReport, out string) {
	t.Helper()
	want := map[string]struct {
		c Class
		a Action
	}{
		"keep.patch": {Clean, Keep}, "refresh.patch": {Offset, Refresh}, "drop.patch": {Contained, Drop},
		"merge.patch": {Merged, Refresh}, "rework.patch": {Conflict, Rework},
	}
	if len(rep.New) != len(want) {
		t.Fatalf("%d results, want %d", len(rep.New), len(want))
	}
	for i, r := range rep.New {
		w := want[r.Patch.Name]
		if r.Class != w.c || ActionFor(r.Class) != w.a {
			t.Errorf("%s: %s/%s, want %s/%s (%s)", r.Patch.Name, r.Class, ActionFor(r.Class), w.c, w.a, r.Summary())
		}
		if rep.Current[i].Class != Clean {
			t.Errorf("%s against the current tree: %s, want clean", r.Patch.Name, rep.Current[i].Class)
		}
	}
	if !strings.Contains(out, "1 to keep, 2 to refresh, 1 to drop, 1 to rework.") {
		t.Errorf("report:\n%s", out)
	}
	b, err := os.ReadFile(filepath.Join(rep.Dir, "REPORT.md"))
	if err != nil || !strings.Contains(string(b), "| 5 | rework.patch | clean | conflict | **rework** |") {
		t.Errorf("REPORT.md (%v):\n%s", err, b)
	}
	m, err := os.ReadFile(filepath.Join(rep.Dir, "conflicts", "rework.patch", "m.txt"))
	if err != nil || !strings.Contains(string(m), "<<<<<<<") || !strings.Contains(string(m), "site fifteen") || !strings.Contains(string(m), "upstream fifteen") {
		t.Errorf("conflict markers for rework.patch (%v):\n%s", err, m)
	}
	// A refreshed patch keeps its description and applies cleanly to the new source.
	ref, err := os.ReadFile(filepath.Join(rep.Dir, "refreshed", "refresh.patch"))
	if err != nil || !strings.HasPrefix(string(ref), "Moves in the new source.\n") {
		t.Fatalf("refreshed patch (%v):\n%s", err, ref)
	}
}

func TestUpgradeFromDirectory(t *testing.T) {
	needTools(t)
	root, newFiles := upgradeTrees(t)
	newSrc := t.TempDir()
	writeFiles(t, newSrc, newFiles)
	var out bytes.Buffer
	rep, err := Upgrade(context.Background(), root, newSrc, filepath.Join(t.TempDir(), "report"), &out)
	if err != nil {
		t.Fatal(err)
	}
	checkUpgrade(t, rep, out.String())

	// The refreshed copy is what a site would put back: against the new source it is clean.
	writeFiles(t, newSrc, map[string]string{"patches/series": "refresh.patch\n"})
	ref, _ := os.ReadFile(filepath.Join(rep.Dir, "refreshed", "refresh.patch"))
	writeFiles(t, newSrc, map[string]string{"patches/refresh.patch": string(ref)})
	var tbl bytes.Buffer
	res, err := Status(context.Background(), newSrc, &tbl)
	if err != nil || len(res) != 1 || res[0].Class != Clean {
		t.Fatalf("refreshed patch on the new source: %v\n%s", err, tbl.String())
	}
}

func TestUpgradeFromGitRef(t *testing.T) {
	needTools(t)
	root, newFiles := upgradeTrees(t)
	tr := &Tree{Dir: root}
	ctx := context.Background()
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "current"}, {"checkout", "-q", "-b", "next"}} {
		if _, err := tr.git(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	writeFiles(t, root, newFiles)
	if err := tr.Commit(ctx, "new upstream"); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.git(ctx, "checkout", "-q", "main"); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep, err := Upgrade(ctx, root, "next", "", &out)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Dir != filepath.Join(root, "build", "patches", "upgrade-next") {
		t.Errorf("report dir %s", rep.Dir)
	}
	checkUpgrade(t, rep, out.String())

	if _, err := Upgrade(ctx, root, "no-such-ref", "", &out); err == nil || !strings.Contains(err.Error(), "not a directory, and not a git ref") {
		t.Fatalf("unknown ref: %v", err)
	}
}
