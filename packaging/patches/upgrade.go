package patches

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Action is what a site should do with a patch on the new source.
type Action string

// The actions an upgrade report recommends.
const (
	Keep    Action = "keep"    // applies as it is
	Refresh Action = "refresh" // applies, but only at an offset, with fuzz or by a merge
	Drop    Action = "drop"    // the new source contains it, or it is empty
	Rework  Action = "rework"  // does not apply: resolve by hand (patches:edit)
)

// ActionFor maps a classification against the new source to an action.
func ActionFor(c Class) Action {
	switch c {
	case Clean:
		return Keep
	case Offset, Merged:
		return Refresh
	case Contained, EmptyDiff:
		return Drop
	}
	return Rework
}

// UpgradeReport is the outcome of checking the series against a new source.
type UpgradeReport struct {
	To      string   // the new source as given
	Current []Result // against the current tree
	New     []Result // against the new source
	Dir     string   // where REPORT.md, refreshed/ and conflicts/ were written
}

// Upgrade checks root's series against a new source, given as a directory or as a git
// ref of root's repository. The patches are first applied to the current tree, so
// every state they were written against exists as blobs, and then to the new source,
// where git apply --3way can use those blobs. The report goes to outDir (default
// root/build/patches/upgrade-<to>): REPORT.md, refreshed/<patch> for every patch that
// still applies (rebased onto the new source, description kept), and
// conflicts/<patch>/ with the files a failed merge left conflict markers in.
func Upgrade(ctx context.Context, root, to, outDir string, w io.Writer) (UpgradeReport, error) {
	rep := UpgradeReport{To: to}
	s, err := ReadSeries(root)
	if err != nil {
		return rep, err
	}
	if len(s.Entries) == 0 {
		fmt.Fprintf(w, "%s/series is empty: nothing to check against %s.\n", Dir, to)
		return rep, nil
	}
	if outDir == "" {
		outDir = filepath.Join(root, "build", "patches", "upgrade-"+safeName(to))
	}
	rep.Dir = outDir
	if err := os.RemoveAll(outDir); err != nil {
		return rep, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return rep, err
	}
	tmp, err := os.MkdirTemp("", "notqmail-upgrade-")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(tmp)

	newSrc, err := resolveSource(ctx, root, to, filepath.Join(tmp, "source"))
	if err != nil {
		return rep, err
	}
	patchDir := filepath.Join(root, Dir)
	objects := gitObjects(ctx, root)
	cur, err := ApplySeries(ctx, root, patchDir, filepath.Join(tmp, "current"), s, ApplyOptions{}, objects)
	if err != nil {
		return rep, err
	}
	rep.Current = cur.Results

	nt, err := NewTree(ctx, newSrc, filepath.Join(tmp, "new"), filepath.Join(cur.Tree.Dir, ".git", "objects"), objects)
	if err != nil {
		return rep, err
	}
	for _, e := range s.Entries {
		p, err := LoadPatch(patchDir, e)
		if err != nil {
			rep.New = append(rep.New, Result{Patch: p, Class: Missing, Err: err})
			continue
		}
		r, err := nt.Apply(ctx, p, ApplyOptions{KeepMarkers: true})
		if err != nil {
			return rep, fmt.Errorf("patch %s: %w", e.Name, err)
		}
		if c := commitOf(cur.Results, e.Name); r.Class == Conflict && len(r.Markers) == 0 && c != "" {
			// No blob ids to merge with: replay the patch's commit on the current tree.
			if err := nt.Replay(ctx, &r, c, ApplyOptions{KeepMarkers: true}); err != nil {
				return rep, fmt.Errorf("patch %s: %w", e.Name, err)
			}
		}
		switch {
		case r.Class.Applied():
			if err := writeRefreshed(ctx, nt, p, filepath.Join(outDir, "refreshed")); err != nil {
				return rep, err
			}
		case r.Class == Conflict && len(r.Markers) > 0:
			dst := filepath.Join(outDir, "conflicts", filepath.FromSlash(p.Name))
			for _, f := range r.Markers {
				if err := copyEntry(filepath.Join(nt.Dir, filepath.FromSlash(f)), filepath.Join(dst, filepath.FromSlash(f))); err != nil {
					return rep, err
				}
			}
			if err := nt.Reset(ctx); err != nil {
				return rep, err
			}
		}
		rep.New = append(rep.New, r)
	}
	text := rep.Markdown()
	if err := os.WriteFile(filepath.Join(outDir, "REPORT.md"), []byte(text), 0o644); err != nil {
		return rep, err
	}
	io.WriteString(w, text)
	fmt.Fprintf(w, "\nwritten to %s\n", outDir)
	return rep, nil
}

func commitOf(results []Result, name string) string {
	for _, r := range results {
		if r.Patch.Name == name {
			return r.Commit
		}
	}
	return ""
}

// resolveSource returns a directory holding the new source: to itself when it is a
// directory, else the tree of the git ref to in root's repository, unpacked in dir.
func resolveSource(ctx context.Context, root, to, dir string) (string, error) {
	if st, err := os.Stat(to); err == nil && st.IsDir() {
		return to, nil
	}
	if strings.HasPrefix(to, "-") {
		return "", fmt.Errorf("new source %q: not a directory, and not a git ref", to)
	}
	if _, e, err := runIn(ctx, root, nil, "git", "rev-parse", "--verify", "--quiet", "--end-of-options", to+"^{tree}"); err != nil {
		return "", fmt.Errorf("new source %q: not a directory, and not a git ref in %s %s", to, root, strings.TrimSpace(e))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tarball := dir + ".tar"
	if _, e, err := runIn(ctx, root, nil, "git", "archive", "--format=tar", "-o", tarball, to); err != nil {
		return "", fmt.Errorf("git archive %s: %v: %s", to, err, firstLines(e, 5))
	}
	if _, e, err := runIn(ctx, dir, nil, "tar", "-xf", tarball); err != nil {
		return "", fmt.Errorf("unpacking %s: %v: %s", to, err, firstLines(e, 5))
	}
	return dir, os.Remove(tarball)
}

// writeRefreshed writes the patch as the last commit of the tree made it: the same
// description, rebased onto the new source.
func writeRefreshed(ctx context.Context, t *Tree, p Patch, dir string) error {
	diff, err := t.git(ctx, "diff", "--binary", "HEAD~1", "HEAD")
	if err != nil {
		return err
	}
	dst := filepath.Join(dir, filepath.FromSlash(p.Name))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, append(Header(p.Data), diff...), 0o644)
}

// Header returns a patch's description header: everything before its first diff.
func Header(b []byte) []byte {
	lines := strings.SplitAfter(string(b), "\n")
	var out strings.Builder
	for i, l := range lines {
		if strings.HasPrefix(l, "diff ") || strings.HasPrefix(l, "Index: ") ||
			(strings.HasPrefix(l, "--- ") && i+1 < len(lines) && strings.HasPrefix(lines[i+1], "+++ ")) {
			break
		}
		out.WriteString(l)
	}
	return []byte(out.String())
}

// Markdown renders the report.
func (r UpgradeReport) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Site patches against %s\n\n", r.To)
	counts := map[Action]int{}
	for _, n := range r.New {
		counts[ActionFor(n.Class)]++
	}
	fmt.Fprintf(&b, "%d to keep, %d to refresh, %d to drop, %d to rework.\n\n",
		counts[Keep], counts[Refresh], counts[Drop], counts[Rework])
	b.WriteString("| # | patch | now | on the new source | action | detail |\n|---|---|---|---|---|---|\n")
	for i, n := range r.New {
		now := "-"
		if i < len(r.Current) {
			now = string(r.Current[i].Class)
		}
		a := ActionFor(n.Class)
		detail := n.Summary()
		switch {
		case n.Class.Applied():
			detail += " (rebased copy: refreshed/" + n.Patch.Name + ")"
		case n.Class == Conflict && len(n.Markers) > 0:
			detail += " (merge result with markers: conflicts/" + n.Patch.Name + "/)"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | **%s** | %s |\n", i+1, n.Patch.Name, now, n.Class, a, mdCell(detail))
	}
	b.WriteString("\nkeep: nothing to do. refresh: replace the patch with its copy under refreshed/. " +
		"drop: remove it from patches/series. rework: after moving to the new source, " +
		"`go run mage.go patches:edit NAME`, resolve, then `patches:refresh`.\n")
	return b.String()
}

func mdCell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func safeName(s string) string {
	s = strings.Trim(unsafeChars.ReplaceAllString(s, "_"), "._")
	if s == "" {
		return "source"
	}
	if len(s) > 60 {
		s = s[len(s)-60:]
	}
	return s
}
