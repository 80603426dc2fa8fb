package patches

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// Applied is a series applied to a scratch copy of a tree.
type Applied struct {
	Tree    *Tree
	Series  Series
	Results []Result
}

// Blocked returns the results that stop a build.
func (a Applied) Blocked() []Result {
	var out []Result
	for _, r := range a.Results {
		if r.Class.Blocks() {
			out = append(out, r)
		}
	}
	return out
}

// ApplySeries copies src into dir and applies every patch of the series (read from
// patchDir) in order, classifying each. A patch that does not apply is left out and
// the rest are still tried, so one report names every problem. objects lends the
// blobs of existing repositories to the 3-way merge.
func ApplySeries(ctx context.Context, src, patchDir, dir string, s Series, o ApplyOptions, objects ...string) (Applied, error) {
	t, err := NewTree(ctx, src, dir, objects...)
	if err != nil {
		return Applied{}, err
	}
	a := Applied{Tree: t, Series: s}
	for _, e := range s.Entries {
		p, err := LoadPatch(patchDir, e)
		if err != nil {
			a.Results = append(a.Results, Result{Patch: p, Class: Missing, Err: err})
			continue
		}
		r, err := t.Apply(ctx, p, o)
		if err != nil {
			return a, fmt.Errorf("patch %s: %w", e.Name, err)
		}
		a.Results = append(a.Results, r)
	}
	return a, nil
}

// gitObjects returns the object directory of the git repository at root, or "".
func gitObjects(ctx context.Context, root string) string {
	out, _, err := runIn(ctx, root, nil, "git", "rev-parse", "--path-format=absolute", "--git-common-dir")
	if err != nil {
		return ""
	}
	d := filepath.Join(strings.TrimSpace(out), "objects")
	if st, err := os.Stat(d); err != nil || !st.IsDir() {
		return ""
	}
	return d
}

// WriteTable prints the classification table.
func WriteTable(w io.Writer, results []Result) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tPATCH\tSTATUS\tDETAIL")
	for i, r := range results {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", i+1, r.Patch.Name, r.Class, r.Summary())
	}
	tw.Flush()
}

// Status applies root's series to a scratch copy and prints the table. It fails when
// a patch does not apply, so it can guard a CI job.
func Status(ctx context.Context, root string, w io.Writer) ([]Result, error) {
	s, err := ReadSeries(root)
	if err != nil {
		return nil, err
	}
	if len(s.Entries) == 0 {
		fmt.Fprintf(w, "%s/series is empty: the build uses the source as it is.\n", Dir)
		return nil, nil
	}
	dir, err := os.MkdirTemp("", "notqmail-patches-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	a, err := ApplySeries(ctx, root, filepath.Join(root, Dir), dir, s, ApplyOptions{}, gitObjects(ctx, root))
	if err != nil {
		return a.Results, err
	}
	WriteTable(w, a.Results)
	if b := a.Blocked(); len(b) > 0 {
		return a.Results, blockedError(b)
	}
	return a.Results, nil
}

func blockedError(b []Result) error {
	var names []string
	for _, r := range b {
		names = append(names, r.Patch.Name)
	}
	return fmt.Errorf("%d patch(es) do not apply: %s (see the table above)", len(b), strings.Join(names, ", "))
}

// PatchList is the file shipped in a site build's packages: the upstream version,
// the site revision and every patch in series order with its SHA-256 and class.
func PatchList(upstream string, revision int, results []Result) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# notqmail site patches, in series order\n")
	fmt.Fprintf(&b, "# upstream version: %s\n# site revision: %d\n", upstream, revision)
	fmt.Fprintf(&b, "# sha256 status patch: description\n")
	for _, r := range results {
		fmt.Fprintf(&b, "%s %s %s", r.Patch.SHA256, r.Class, r.Patch.Name)
		if r.Patch.Description != "" {
			fmt.Fprintf(&b, ": %s", r.Patch.Description)
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}
