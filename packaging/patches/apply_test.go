package patches

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/testpeer"
)

// lines returns "1\n2\n...n\n" with replacements by line number.
func lines(n int, repl map[int]string) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if r, ok := repl[i]; ok {
			if r != "" {
				b.WriteString(r + "\n")
			}
			continue
		}
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.String()
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// unifiedDiff makes a -p1 patch with GNU diff, as a site would with diff -u.
func unifiedDiff(t *testing.T, name, old, new string) string {
	t.Helper()
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"old": old, "new": new})
	cmd := exec.Command("diff", "-u", "--label", "a/"+name, "--label", "b/"+name, "old", "new")
	cmd.Dir = d
	out, err := cmd.Output()
	if err != nil && cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("diff: %v", err)
	}
	return string(out)
}

func needTools(t *testing.T) {
	t.Helper()
	testpeer.Need(t, "git")
	testpeer.Need(t, "patch")
	testpeer.Need(t, "diff")
}

// classify applies one patch (text) to a tree made from files and returns the result
// and the tree.
func classify(t *testing.T, files map[string]string, patch string, objects ...string) (Result, *Tree) {
	t.Helper()
	src := t.TempDir()
	writeFiles(t, src, files)
	pdir := t.TempDir()
	writeFiles(t, pdir, map[string]string{"x.patch": patch})
	ctx := context.Background()
	tree, err := NewTree(ctx, src, filepath.Join(t.TempDir(), "tree"), objects...)
	if err != nil {
		t.Fatal(err)
	}
	p, err := LoadPatch(pdir, Entry{Name: "x.patch", Strip: 1, Line: 1})
	if err != nil {
		t.Fatal(err)
	}
	r, err := tree.Apply(ctx, p, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r, tree
}

func readTree(t *testing.T, tree *Tree, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tree.Dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestClassifyEachClass(t *testing.T) {
	needTools(t)
	base := lines(30, nil)
	patched := lines(30, map[int]string{15: "fifteen"})
	patch := "Spell out fifteen.\n\n" + unifiedDiff(t, "f.txt", base, patched)

	t.Run("clean", func(t *testing.T) {
		r, tree := classify(t, map[string]string{"f.txt": base}, patch)
		if r.Class != Clean {
			t.Fatalf("class %s (%s), want clean", r.Class, r.Summary())
		}
		if got := readTree(t, tree, "f.txt"); got != patched {
			t.Fatalf("tree not patched:\n%s", got)
		}
		if r.Patch.Description != "Spell out fifteen." {
			t.Errorf("description %q", r.Patch.Description)
		}
	})
	t.Run("offset", func(t *testing.T) {
		moved := "a\nb\nc\n" + base
		r, tree := classify(t, map[string]string{"f.txt": moved}, patch)
		if r.Class != Offset || len(r.Where) != 1 || r.Where[0] != "f.txt hunk #1 at line 15 (offset 3 lines)" {
			t.Fatalf("class %s where %q, want offset at f.txt hunk #1 line 15", r.Class, r.Where)
		}
		if got := readTree(t, tree, "f.txt"); got != "a\nb\nc\n"+patched {
			t.Fatalf("tree not patched at the offset:\n%s", got)
		}
	})
	t.Run("fuzz", func(t *testing.T) {
		// Line 12 is the hunk's outermost context: only GNU patch's fuzz gets past it.
		r, tree := classify(t, map[string]string{"f.txt": lines(30, map[int]string{12: "twelve"})}, patch)
		if r.Class != Offset || len(r.Where) != 1 || !strings.Contains(r.Where[0], "f.txt hunk #1 at line 12 (fuzz 1)") {
			t.Fatalf("class %s where %q, want fuzz 1 at f.txt hunk #1", r.Class, r.Where)
		}
		if got := readTree(t, tree, "f.txt"); got != lines(30, map[int]string{12: "twelve", 15: "fifteen"}) {
			t.Fatalf("tree not patched with fuzz:\n%s", got)
		}
	})
	t.Run("upstream", func(t *testing.T) {
		// The source took the change, and moved it: still recognised.
		r, tree := classify(t, map[string]string{"f.txt": "new first line\n" + patched}, patch)
		if r.Class != Contained {
			t.Fatalf("class %s (%s), want upstream", r.Class, r.Summary())
		}
		if got := readTree(t, tree, "f.txt"); got != "new first line\n"+patched {
			t.Fatalf("a contained patch changed the tree:\n%s", got)
		}
	})
	t.Run("conflict", func(t *testing.T) {
		theirs := lines(30, map[int]string{15: "FIFTEEN (upstream)"})
		r, tree := classify(t, map[string]string{"f.txt": theirs}, patch)
		if r.Class != Conflict {
			t.Fatalf("class %s, want conflict", r.Class)
		}
		want := "f.txt hunk #1 @@ -12,7 +12,7 @@ FAILED at line 12"
		if len(r.Conflicts) != 1 || r.Conflicts[0] != want {
			t.Fatalf("conflicts %q, want %q", r.Conflicts, want)
		}
		if got := readTree(t, tree, "f.txt"); got != theirs {
			t.Fatalf("a conflicting patch was left half applied:\n%s", got)
		}
	})
	t.Run("empty", func(t *testing.T) {
		r, _ := classify(t, map[string]string{"f.txt": base}, "Nothing yet.\n")
		if r.Class != EmptyDiff || r.Class.Blocks() {
			t.Fatalf("class %s, want a non-blocking empty", r.Class)
		}
	})
}

// gitPatch makes a git-format patch (with blob ids) in a repository of its own, whose
// objects a later 3-way merge can borrow.
func gitPatch(t *testing.T, name, old, new string) (patch, objects string) {
	t.Helper()
	d := t.TempDir()
	tr := &Tree{Dir: d}
	ctx := context.Background()
	writeFiles(t, d, map[string]string{name: old})
	if _, err := tr.git(ctx, "init", "-q"); err != nil {
		t.Fatal(err)
	}
	if err := tr.Commit(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, d, map[string]string{name: new})
	out, err := tr.git(ctx, "diff")
	if err != nil {
		t.Fatal(err)
	}
	return out, filepath.Join(d, ".git", "objects")
}

func TestClassifyThreeWay(t *testing.T) {
	needTools(t)
	base := lines(30, nil)
	// One hunk changing lines 15 and 19, so 16-18 are inner context fuzz cannot skip.
	patch, objects := gitPatch(t, "f.txt", base, lines(30, map[int]string{15: "fifteen", 19: "nineteen"}))
	theirs := lines(30, map[int]string{17: "seventeen"})

	r, tree := classify(t, map[string]string{"f.txt": theirs}, patch, objects)
	if r.Class != Merged {
		t.Fatalf("class %s (%s), want merged", r.Class, r.Summary())
	}
	want := lines(30, map[int]string{15: "fifteen", 17: "seventeen", 19: "nineteen"})
	if got := readTree(t, tree, "f.txt"); got != want {
		t.Fatalf("3-way result:\n%s", got)
	}

	// Without the base blob there is nothing to merge against: a conflict naming the hunk.
	r, _ = classify(t, map[string]string{"f.txt": theirs}, patch)
	if r.Class != Conflict || len(r.Conflicts) != 1 || !strings.HasPrefix(r.Conflicts[0], "f.txt hunk #1 @@ -12,11 +12,11 @@ FAILED") {
		t.Fatalf("class %s conflicts %q, want a conflict on f.txt hunk #1", r.Class, r.Conflicts)
	}

	// Upstream changed the same line: the merge itself conflicts and says where.
	r, tree = classify(t, map[string]string{"f.txt": lines(30, map[int]string{15: "FIFTEEN"})}, patch, objects)
	if r.Class != Conflict || len(r.Markers) != 1 || r.Markers[0] != "f.txt" {
		t.Fatalf("class %s markers %q, want a conflict with markers in f.txt", r.Class, r.Markers)
	}
	if got := readTree(t, tree, "f.txt"); got != lines(30, map[int]string{15: "FIFTEEN"}) {
		t.Fatalf("failed merge not undone:\n%s", got)
	}
}

func TestApplySeriesInOrder(t *testing.T) {
	needTools(t)
	base := lines(10, nil)
	one := lines(10, map[int]string{2: "two"})
	two := lines(10, map[int]string{2: "two", 3: "three"})
	src := t.TempDir()
	writeFiles(t, src, map[string]string{
		"f.txt":                    base,
		"patches/series":           "# site-revision: 3\nfirst.patch\nsub/second.patch -p1 # depends on first\n",
		"patches/first.patch":      unifiedDiff(t, "f.txt", base, one),
		"patches/sub/second.patch": unifiedDiff(t, "f.txt", one, two),
	})
	s, err := ReadSeries(src)
	if err != nil {
		t.Fatal(err)
	}
	if s.Revision != 3 || len(s.Entries) != 2 {
		t.Fatalf("series %+v", s)
	}
	a, err := ApplySeries(context.Background(), src, filepath.Join(src, Dir), filepath.Join(t.TempDir(), "t"), s, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range a.Results {
		if r.Class != Clean {
			t.Fatalf("%s: %s, want clean", r.Patch.Name, r.Summary())
		}
	}
	if got := readTree(t, a.Tree, "f.txt"); got != two {
		t.Fatalf("tree:\n%s", got)
	}
	// The source itself is never touched.
	if b, _ := os.ReadFile(filepath.Join(src, "f.txt")); string(b) != base {
		t.Fatal("source tree was modified")
	}
}

// CopyTree takes what git would build from: tracked and untracked files, not ignored
// ones, and never build/, dist/ or .git; a relative path works.
func TestCopyTreeFromGit(t *testing.T) {
	needTools(t)
	ctx := context.Background()
	src := t.TempDir()
	writeFiles(t, src, map[string]string{
		".gitignore": "*.o\n", "tracked.go": "package x\n", "sub/untracked.txt": "new\n",
		"obj.o": "ignored\n", "build/out": "x\n", "dist/p.deb": "x\n",
	})
	tr := &Tree{Dir: src}
	if _, err := tr.git(ctx, "init", "-q"); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.git(ctx, "add", ".gitignore", "tracked.go"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("tracked.go", filepath.Join(src, "link.go")); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	relSrc, err := filepath.Rel(wd, src)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := CopyTree(ctx, relSrc, dst); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		".gitignore": true, "tracked.go": true, "sub/untracked.txt": true, "link.go": true,
		"obj.o": false, "build/out": false, "dist/p.deb": false, ".git": false,
	} {
		_, err := os.Lstat(filepath.Join(dst, name))
		if (err == nil) != want {
			t.Errorf("%s copied: %v, want %v", name, err == nil, want)
		}
	}
	if l, err := os.Readlink(filepath.Join(dst, "link.go")); err != nil || l != "tracked.go" {
		t.Errorf("symlink copied as %q %v", l, err)
	}
}
