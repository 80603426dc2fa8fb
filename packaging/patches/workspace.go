package patches

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/notqmail/notqmail/packaging/release"
)

// The workspace is quilt's idea in a scratch copy: the tree with the series applied up
// to the patch being written, whose own changes stay uncommitted so that "refresh"
// writes exactly them back into patches/. It lives in build/patches/work, never in the
// source tree itself.

// WorkDir is the workspace under the source root.
func WorkDir(root string) string { return filepath.Join(root, "build", "patches", "work") }

// topFile records the patch the workspace edits, inside its .git.
const topFile = "notqmail-patch"

// NewPatch adds name to the end of the series (as an empty patch with a description
// placeholder) and prepares the workspace to write it.
func NewPatch(ctx context.Context, root, name string, w io.Writer) error {
	if !strings.Contains(filepath.Base(name), ".") {
		name += ".patch"
	}
	if err := checkName(name); err != nil {
		return err
	}
	s, err := ReadSeries(root)
	if err != nil {
		return err
	}
	for _, e := range s.Entries {
		if e.Name == name {
			return fmt.Errorf("%s is already in %s/series (line %d): use patches:edit", name, Dir, e.Line)
		}
	}
	p := filepath.Join(root, Dir, filepath.FromSlash(name))
	if _, err := os.Lstat(p); err == nil {
		return fmt.Errorf("%s exists but is not in the series: add it to %s/series, or remove it", p, Dir)
	}
	if _, err := prepareWork(ctx, root, s, len(s.Entries)); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, []byte(name+": say what this patch changes and why.\n"), 0o644); err != nil {
		return err
	}
	if err := appendSeries(root, name); err != nil {
		return err
	}
	return startEditing(root, name, w)
}

// EditPatch prepares the workspace to change a patch already in the series: the
// patches before it committed, its own change applied on top and left uncommitted. A
// patch that no longer applies is merged with conflict markers left to resolve.
func EditPatch(ctx context.Context, root, name string, w io.Writer) error {
	s, err := ReadSeries(root)
	if err != nil {
		return err
	}
	idx := -1
	for i, e := range s.Entries {
		if e.Name == name {
			idx = i
		}
	}
	if idx < 0 {
		return fmt.Errorf("%s is not in %s/series", name, Dir)
	}
	t, err := prepareWork(ctx, root, s, idx)
	if err != nil {
		return err
	}
	p, err := LoadPatch(filepath.Join(root, Dir), s.Entries[idx])
	if err != nil {
		return err
	}
	r, err := t.Apply(ctx, p, ApplyOptions{KeepMarkers: true})
	if err != nil {
		return err
	}
	switch {
	case r.Class == Contained:
		return fmt.Errorf("%s: %s; remove it from %s/series", name, r.Summary(), Dir)
	case r.Class == Conflict && len(r.Markers) == 0:
		return fmt.Errorf("%s: %s; edit the files in %s by hand, then refresh", name, r.Summary(), t.Dir)
	case r.Class.Applied():
		// Uncommit the patch's own change, so refresh sees it.
		if _, err := t.git(ctx, "reset", "-q", "--mixed", "HEAD~1"); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "%s: %s\n", name, r.Summary())
	if len(r.Markers) > 0 {
		fmt.Fprintf(w, "resolve the conflict markers in: %s\n", strings.Join(r.Markers, ", "))
	}
	return startEditing(root, name, w)
}

// prepareWork makes a fresh workspace with the first n patches of the series applied
// and committed; every one of them must apply.
func prepareWork(ctx context.Context, root string, s Series, n int) (*Tree, error) {
	dir := WorkDir(root)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	t, err := NewTree(ctx, root, dir, gitObjects(ctx, root))
	if err != nil {
		return nil, err
	}
	for _, e := range s.Entries[:n] {
		p, err := LoadPatch(filepath.Join(root, Dir), e)
		if err != nil {
			return nil, err
		}
		r, err := t.Apply(ctx, p, ApplyOptions{})
		if err != nil {
			return nil, err
		}
		if r.Class.Blocks() {
			return nil, fmt.Errorf("%s, earlier in the series: %s; fix it first (patches:edit %s)", e.Name, r.Summary(), e.Name)
		}
	}
	return t, nil
}

func startEditing(root, name string, w io.Writer) error {
	dir := WorkDir(root)
	if err := os.WriteFile(filepath.Join(dir, ".git", topFile), []byte(name+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "editing %s: change files in %s, then run: go run mage.go patches:refresh\n", name, dir)
	return nil
}

func appendSeries(root, name string) error {
	p := filepath.Join(root, Dir, "series")
	b, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if len(b) > 0 && !bytes.HasSuffix(b, []byte("\n")) {
		b = append(b, '\n')
	}
	b = append(b, name+"\n"...)
	if _, err := ParseSeries(b); err != nil {
		return err
	}
	return release.WriteAtomic(p, b)
}

// RefreshPatch writes the workspace's uncommitted changes into the patch it edits,
// keeping the patch's description header. It refuses while conflict markers remain.
func RefreshPatch(ctx context.Context, root string, w io.Writer) error {
	dir := WorkDir(root)
	b, err := os.ReadFile(filepath.Join(dir, ".git", topFile))
	if err != nil {
		return fmt.Errorf("no patch is being edited (%v): start with patches:new NAME or patches:edit NAME", err)
	}
	name := strings.TrimSpace(string(b))
	s, err := ReadSeries(root)
	if err != nil {
		return err
	}
	var entry *Entry
	for i := range s.Entries {
		if s.Entries[i].Name == name {
			entry = &s.Entries[i]
		}
	}
	if entry == nil {
		return fmt.Errorf("%s is no longer in %s/series", name, Dir)
	}
	if entry.Strip != 1 {
		return fmt.Errorf("%s/series line %d: refresh writes -p1 patches; drop the -p%d from the line first", Dir, entry.Line, entry.Strip)
	}
	t := &Tree{Dir: dir}
	if _, err := t.git(ctx, "add", "-A"); err != nil {
		return err
	}
	diff, err := t.git(ctx, "diff", "--cached", "--binary", "HEAD")
	if err != nil {
		return err
	}
	if markers := conflictMarkers(diff); len(markers) > 0 {
		return fmt.Errorf("conflict markers remain in %s: resolve them in %s first", strings.Join(markers, ", "), dir)
	}
	p := filepath.Join(root, Dir, filepath.FromSlash(name))
	old, err := readLimited(p, maxPatch)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := release.WriteAtomic(p, append(Header(old), diff...)); err != nil {
		return err
	}
	_, files := parsePatch([]byte(diff), 1)
	var names []string
	for _, f := range files {
		names = append(names, f.File)
	}
	if len(names) == 0 {
		fmt.Fprintf(w, "refreshed %s: no changes in the workspace, so the patch is empty\n", p)
		return nil
	}
	fmt.Fprintf(w, "refreshed %s: %s\n", p, strings.Join(names, ", "))
	return nil
}

// conflictMarkers names the files whose added lines carry merge conflict markers.
func conflictMarkers(diff string) []string {
	var out []string
	file := ""
	for _, l := range strings.Split(diff, "\n") {
		switch {
		case strings.HasPrefix(l, "+++ "):
			file = stripPath(strings.TrimPrefix(l, "+++ "), 1)
		case strings.HasPrefix(l, "+<<<<<<< "), strings.HasPrefix(l, "+>>>>>>> "):
			if len(out) == 0 || out[len(out)-1] != file {
				out = append(out, file)
			}
		}
	}
	return out
}
