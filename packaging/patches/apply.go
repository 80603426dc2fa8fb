package patches

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// Class is what a patch does against a tree.
type Class string

// The classes, from best to worst.
const (
	Clean     Class = "clean"      // applies exactly where it says
	Offset    Class = "offset"     // applies at an offset or with fuzz: refresh it
	Merged    Class = "merged"     // applies only through a 3-way merge: refresh it
	Contained Class = "upstream"   // the source already has it: ready to drop
	EmptyDiff Class = "empty"      // changes nothing yet (new, never refreshed)
	Conflict  Class = "conflict"   // does not apply: rework it
	Missing   Class = "unreadable" // the file named in the series cannot be read
)

// Applied says whether the patch's change is in the tree after Apply.
func (c Class) Applied() bool { return c == Clean || c == Offset || c == Merged }

// Blocks says whether a build must stop on this class.
func (c Class) Blocks() bool { return c == Conflict || c == Missing }

// Result is the classification of one patch.
type Result struct {
	Patch     Patch
	Class     Class
	Where     []string // offset and fuzz locations
	Conflicts []string // files and hunks that did not apply, and why
	Markers   []string // files the 3-way merge left conflict markers in
	Commit    string   // the tree's commit holding the patch, when applied
	Err       error    // for Missing
}

// Summary is the one-line explanation of a result.
func (r Result) Summary() string {
	switch r.Class {
	case Clean:
		return "applies cleanly"
	case Offset:
		return "applies with offset or fuzz: " + strings.Join(r.Where, "; ")
	case Merged:
		return "applies only by a 3-way merge; refresh it"
	case Contained:
		return "already in the source (reverse-applies): ready to drop"
	case EmptyDiff:
		return "changes nothing: refresh it or remove it from the series"
	case Conflict:
		s := "does not apply: " + strings.Join(r.Conflicts, "; ")
		if len(r.Markers) > 0 {
			s += "; the 3-way merge conflicts in " + strings.Join(r.Markers, ", ")
		}
		return s
	case Missing:
		return fmt.Sprint(r.Err)
	}
	return string(r.Class)
}

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// KeepMarkers leaves a failed 3-way merge's conflict markers in the tree instead of
	// undoing it, for a person to resolve.
	KeepMarkers bool
}

// Apply classifies p against the tree and, when it applies, applies and commits it.
// The order of the checks matters: an exact forward apply wins; a patch that
// reverse-applies is then already contained (checked before offsets, so an upstream
// copy of the change is not applied a second time somewhere else); then offsets (git
// apply), fuzz (GNU patch), and last a 3-way merge (git apply --3way).
func (t *Tree) Apply(ctx context.Context, p Patch, o ApplyOptions) (Result, error) {
	r := Result{Patch: p}
	if p.Empty() {
		r.Class = EmptyDiff
		return r, nil
	}
	strip := "-p" + strconv.Itoa(p.Strip)
	fwdOut, fwdErr, err := t.run(ctx, "git", "apply", "--check", "-v", strip, p.Path)
	forward := err == nil
	if err != nil && !isExit(err) {
		return r, fmt.Errorf("git apply: %v", err)
	}
	fwdWhere := hunkNotes(fwdOut + fwdErr)
	if forward && len(fwdWhere) == 0 {
		r.Class = Clean
		return r, t.gitApply(ctx, &r, strip)
	}
	if _, _, err := t.run(ctx, "git", "apply", "--check", "-R", strip, p.Path); err == nil {
		r.Class = Contained
		return r, nil
	}
	if forward {
		r.Class, r.Where = Offset, fwdWhere
		return r, t.gitApply(ctx, &r, strip)
	}
	gp := []string{strip, "--batch", "--forward", "--no-backup-if-mismatch", "-i", p.Path}
	dryOut, dryErr, err := t.run(ctx, "patch", append([]string{"--dry-run"}, gp...)...)
	if err != nil && !isExit(err) {
		return r, fmt.Errorf("GNU patch: %v", err)
	}
	if err == nil {
		r.Class, r.Where = Offset, hunkNotes(dryOut+dryErr)
		if _, e2, err := t.run(ctx, "patch", gp...); err != nil {
			return r, fmt.Errorf("GNU patch %s: %v: %s", p.Name, err, firstLines(e2, 10))
		}
		return r, t.commitPatch(ctx, &r, "")
	}
	r.Conflicts = failures(p, dryOut+dryErr)
	_, _, err = t.run(ctx, "git", "apply", "--3way", strip, p.Path)
	if err == nil {
		if un := t.unmerged(ctx); len(un) == 0 {
			r.Class, r.Conflicts = Merged, nil
			return r, t.commitPatch(ctx, &r, " (3-way merge)")
		}
	}
	r.Class = Conflict
	r.Markers = t.unmerged(ctx)
	if len(r.Markers) > 0 && o.KeepMarkers {
		return r, nil
	}
	return r, t.Reset(ctx)
}

func (t *Tree) gitApply(ctx context.Context, r *Result, strip string) error {
	if _, e, err := t.run(ctx, "git", "apply", strip, r.Patch.Path); err != nil {
		return fmt.Errorf("git apply %s: %v: %s", r.Patch.Name, err, firstLines(e, 10))
	}
	return t.commitPatch(ctx, r, "")
}

// commitPatch commits an applied patch and records the commit.
func (t *Tree) commitPatch(ctx context.Context, r *Result, how string) error {
	if err := t.Commit(ctx, "patch "+r.Patch.Name+how); err != nil {
		return err
	}
	out, err := t.git(ctx, "rev-parse", "HEAD")
	r.Commit = strings.TrimSpace(out)
	return err
}

// Replay applies a commit from another tree whose objects this one borrows (see
// NewTree) by a 3-way merge of whole files, as git cherry-pick does: base is the
// commit's parent. This works for any patch format, where git apply --3way needs the
// blob ids of a git-format patch. r must be a Conflict from Apply, with the tree reset.
func (t *Tree) Replay(ctx context.Context, r *Result, commit string, o ApplyOptions) error {
	if _, _, err := t.run(ctx, "git", "-c", "core.hooksPath=/dev/null", "cherry-pick", "--no-commit", commit); err == nil {
		if un := t.unmerged(ctx); len(un) == 0 {
			r.Class, r.Conflicts, r.Markers = Merged, nil, nil
			return t.commitPatch(ctx, r, " (3-way merge)")
		}
	}
	r.Markers = t.unmerged(ctx)
	if len(r.Markers) > 0 && o.KeepMarkers {
		return nil
	}
	return t.Reset(ctx)
}

// unmerged lists the files a 3-way merge left in conflict.
func (t *Tree) unmerged(ctx context.Context) []string {
	out, err := t.git(ctx, "diff", "--name-only", "--diff-filter=U")
	if err != nil {
		return nil
	}
	return strings.Fields(out)
}

func isExit(err error) bool {
	_, ok := err.(*exec.ExitError)
	return ok
}

var (
	// "Checking patch src/x.go..." (git apply -v) and "checking file src/x.go" (GNU patch).
	fileLine = regexp.MustCompile(`^(?:Checking patch (.+)\.\.\.|checking file (.+)|patching file (.+))$`)
	// "Hunk #2 succeeded at 40 with fuzz 1 (offset 3 lines)."
	hunkOK     = regexp.MustCompile(`^Hunk #(\d+) succeeded at (\d+)(?: with fuzz (\d+))?(?: \(offset (-?\d+) lines?\))?\.$`)
	hunkFailed = regexp.MustCompile(`^Hunk #(\d+) (FAILED|ignored) at (\d+)\.$`)
)

// hunkNotes turns the tools' verbose output into "file: hunk #N at line L (offset D
// lines, fuzz F)" notes, one per hunk that did not apply exactly.
func hunkNotes(out string) []string {
	var notes []string
	file := ""
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if m := fileLine.FindStringSubmatch(l); m != nil {
			file = unquote(m[1] + m[2] + m[3])
			continue
		}
		m := hunkOK.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		var how []string
		if m[4] != "" {
			how = append(how, "offset "+m[4]+" lines")
		}
		if m[3] != "" {
			how = append(how, "fuzz "+m[3])
		}
		notes = append(notes, fmt.Sprintf("%s hunk #%s at line %s (%s)", file, m[1], m[2], strings.Join(how, ", ")))
	}
	return notes
}

// failures names the files and hunks that GNU patch could not apply, with each hunk's
// header from the patch so a person finds it.
func failures(p Patch, out string) []string {
	var notes []string
	file := ""
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if m := fileLine.FindStringSubmatch(l); m != nil {
			file = unquote(m[1] + m[2] + m[3])
			continue
		}
		switch {
		case strings.HasPrefix(l, "can't find file to patch"):
			notes = append(notes, "a file it patches does not exist")
		case strings.HasPrefix(l, "Reversed (or previously applied) patch detected"):
			notes = append(notes, fmt.Sprintf("%s already has part of this change", file))
		case strings.HasPrefix(l, "The next patch would create the file"):
			notes = append(notes, "creates a file that already exists")
		}
		m := hunkFailed.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		h := ""
		for _, f := range p.Files {
			if f.File == file && n >= 1 && n <= len(f.Hunks) {
				h = " " + f.Hunks[n-1]
			}
		}
		notes = append(notes, fmt.Sprintf("%s hunk #%d%s %s at line %s", file, n, h, m[2], m[3]))
	}
	if len(notes) == 0 {
		notes = append(notes, "GNU patch: "+firstLines(out, 5))
	}
	return notes
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}
