package patches

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/notqmail/notqmail/packaging/release"
)

// TestPackagesEnv chooses which packages the patched copy's tests run, as
// space-separated go test patterns; the default is every package ("./...").
const TestPackagesEnv = "NOTQMAIL_SITE_TEST_PACKAGES"

// InsideEnv is set while the patched copy's tests run, so that tests which would
// start yet another site build inside it skip themselves.
const InsideEnv = "NOTQMAIL_SITE_BUILD"

// Options configure a site build.
type Options struct {
	Release release.Options // Root is the unpatched tree; Dist receives the packages
	// TestPackages are the go test patterns run in the patched copy; default from
	// TestPackagesEnv, else "./...".
	TestPackages []string
	// Builder builds the packages from the patched copy; default release.Package.
	Builder func(context.Context, release.Options) ([]release.Artifact, error)
	// Work is where the patched copy is made; default a new temporary directory,
	// removed after a successful build and kept after a failure for inspection.
	Work string
}

// Package is the default pipeline with the site overlay: with an empty series it is
// release.Package on the tree as it is. Otherwise it applies the series to a copy,
// stops on a patch that does not apply, runs the copy's tests and stops on a failure,
// and only then builds packages from the copy, with the site suffix in the version and
// the patch list inside. The packages are staged and replace dist/'s only when all of
// them exist, so any failure leaves the previous dist/ as it was.
func Package(ctx context.Context, o Options) ([]release.Artifact, error) {
	ro := o.Release
	if ro.Log == nil {
		ro.Log = os.Stdout
	}
	log := ro.Log
	root := ro.Root
	if o.Builder == nil {
		o.Builder = release.Package
	}
	s, err := ReadSeries(root)
	if err != nil {
		return nil, err
	}
	if len(s.Entries) == 0 {
		return o.Builder(ctx, ro)
	}
	step(log, "applying %d site patch(es) from %s/series to a copy of the tree", len(s.Entries), Dir)
	work := o.Work
	if work == "" {
		if work, err = os.MkdirTemp("", "notqmail-site-"); err != nil {
			return nil, err
		}
	}
	ok := false
	defer func() {
		if ok && o.Work == "" {
			os.RemoveAll(work)
		} else if !ok {
			fmt.Fprintf(log, "the patched copy is kept in %s\n", work)
		}
	}()
	copyDir := filepath.Join(work, "tree")
	a, err := ApplySeries(ctx, root, filepath.Join(root, Dir), copyDir, s, ApplyOptions{}, gitObjects(ctx, root))
	if err != nil {
		return nil, err
	}
	WriteTable(log, a.Results)
	if b := a.Blocked(); len(b) > 0 {
		return nil, fmt.Errorf("site build stopped before testing, dist/ untouched: %w", blockedError(b))
	}

	pkgs := o.TestPackages
	if len(pkgs) == 0 {
		pkgs = strings.Fields(os.Getenv(TestPackagesEnv))
	}
	if len(pkgs) == 0 {
		pkgs = []string{"./..."}
	}
	step(log, "testing the patched copy: go test %s", strings.Join(pkgs, " "))
	testLog := filepath.Join(work, "test.log")
	if err := RunTests(ctx, copyDir, pkgs, testLog); err != nil {
		return nil, fmt.Errorf("site build stopped, dist/ untouched: the patched tree's tests fail (%v)%s\nfull output: %s",
			err, suspects(a.Results, testLog), testLog)
	}

	rev := s.Revision
	if rev == 0 {
		rev = gitRevision(ctx, root)
	}
	upstream, err := release.DetectVersion(root)
	if err != nil {
		return nil, err
	}
	dist := ro.Dist
	if dist == "" {
		dist = filepath.Join(root, "dist")
	}
	build := ro.Build
	if build == "" {
		build = filepath.Join(root, "build")
	}
	// The staging directory lies beside dist's usual home so that publishing is a
	// rename, not a copy.
	if err := os.MkdirAll(build, 0o755); err != nil {
		return nil, err
	}
	staging, err := os.MkdirTemp(build, "site-dist-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(staging)
	ro.Root = copyDir
	ro.Build = filepath.Join(work, "build")
	ro.Dist = staging
	ro.Site = &release.Site{Source: root, Revision: rev, PatchList: PatchList(upstream.String(), rev, a.Results)}
	step(log, "building packages from the patched copy (site revision %d)", rev)
	arts, err := o.Builder(ctx, ro)
	if err != nil {
		return nil, fmt.Errorf("site build failed, dist/ untouched: %w", err)
	}
	if err := release.PublishStaged(staging, dist, arts); err != nil {
		return nil, err
	}
	ok = true
	return arts, nil
}

func step(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "==> "+format+"\n", args...)
}

// gitRevision counts the commits that touched the patch directory, so the site
// revision grows whenever the committed series changes; 1 outside git or before the
// first such commit.
func gitRevision(ctx context.Context, root string) int {
	out, _, err := runIn(ctx, root, nil, "git", "rev-list", "--count", "HEAD", "--", Dir)
	if err != nil {
		return 1
	}
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// RunTests runs go test on the patched copy, writing all output to logPath. The
// error names the failing packages.
func RunTests(ctx context.Context, dir string, pkgs []string, logPath string) error {
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	gobin := filepath.Join(goroot(), "bin", "go")
	cmd := exec.CommandContext(ctx, gobin, append([]string{"test"}, pkgs...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), InsideEnv+"=1")
	cmd.Stdout, cmd.Stderr = f, f
	runErr := cmd.Run()
	if runErr == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(runErr, &ee) {
		return runErr
	}
	failed := failedPackages(logPath)
	if len(failed) == 0 {
		return fmt.Errorf("go test: %v", runErr)
	}
	return fmt.Errorf("failing: %s", strings.Join(failed, ", "))
}

func goroot() string {
	if r := os.Getenv("GOROOT"); r != "" {
		return r
	}
	if p, err := exec.LookPath("go"); err == nil {
		return filepath.Dir(filepath.Dir(p))
	}
	return "/usr/local/go"
}

// failedPackages reads go test's "FAIL\tpkg" lines and "--- FAIL: TestX" lines,
// streaming, since a test log can be large.
func failedPackages(logPath string) []string {
	f, err := os.Open(logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		var name string
		switch {
		case strings.HasPrefix(l, "FAIL\t"):
			if f := strings.Fields(l); len(f) >= 2 {
				name = f[1]
			}
		case strings.HasPrefix(strings.TrimSpace(l), "--- FAIL: "):
			if f := strings.Fields(strings.TrimSpace(l)); len(f) >= 3 {
				name = f[2]
			}
		}
		if name != "" && !seen[name] && len(out) < 50 {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

// suspects names the applied patches that touch the packages whose tests fail.
func suspects(results []Result, logPath string) string {
	failed := failedPackages(logPath)
	var names []string
	for _, r := range results {
		if !r.Class.Applied() {
			continue
		}
	files:
		for _, f := range r.Patch.Files {
			dir := filepath.ToSlash(filepath.Dir(f.File))
			for _, pkg := range failed {
				if dir != "." && (strings.HasSuffix(pkg, "/"+dir) || pkg == dir) {
					names = append(names, r.Patch.Name)
					break files
				}
			}
		}
	}
	if len(names) == 0 {
		return ""
	}
	return "; patches touching those packages: " + strings.Join(names, ", ")
}
