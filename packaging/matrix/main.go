package matrix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/notqmail/notqmail/packaging/chroot"
)

// Options configure `go run mage.go matrix [ROW]`.
type Options struct {
	Tree     string    // the source tree
	Row      string    // one row's name; "" or "all" runs every row that runs here
	Work     string    // default Tree/build/matrix
	CacheDir string    // built roots; default $NOTQMAIL_MATRIX_CACHE, else chroot.DefaultCacheDir
	Previous string    // see PreviousEnv; default $NOTQMAIL_MATRIX_PREVIOUS
	Log      io.Writer // default os.Stdout
	// ReportDir receives matrix.json and MATRIX.md; default $NOTQMAIL_MATRIX_REPORT,
	// else Tree/distros.
	ReportDir string
}

// ReportEnv redirects the report, so that a test run does not rewrite the committed
// distros/ files.
const ReportEnv = "NOTQMAIL_MATRIX_REPORT"

// CacheEnv overrides where built roots are kept.
const CacheEnv = "NOTQMAIL_MATRIX_CACHE"

// Tools are the host programs the runner needs and their Debian packages.
var Tools = map[string]string{
	"mmdebstrap":     "mmdebstrap",
	"arch-test":      "arch-test",
	"update-binfmts": "binfmt-support",
	"chroot":         "coreutils",
	"git":            "git",
}

// ErrCellsFailed is returned when a cell failed; the report is written anyway.
var ErrCellsFailed = errors.New("matrix: cells failed")

// Main builds the packages, runs the selected rows, merges their results into
// distros/matrix.json and renders distros/MATRIX.md.
func Main(ctx context.Context, o Options) (Report, error) {
	if o.Log == nil {
		o.Log = os.Stdout
	}
	if o.Work == "" {
		o.Work = filepath.Join(o.Tree, "build", "matrix")
	}
	if o.CacheDir == "" {
		o.CacheDir = os.Getenv(CacheEnv)
	}
	if o.Previous == "" {
		o.Previous = os.Getenv(PreviousEnv)
	}
	distros := filepath.Join(o.Tree, "distros")
	if o.ReportDir == "" {
		o.ReportDir = os.Getenv(ReportEnv)
	}
	if o.ReportDir == "" {
		o.ReportDir = distros
	}
	rows, err := LoadRows(distros)
	if err != nil {
		return Report{}, err
	}
	sel, err := Select(rows, o.Row)
	if err != nil {
		return Report{}, err
	}
	if os.Geteuid() != 0 {
		return Report{}, ErrNotRoot
	}
	if err := ensureTools(ctx, o.Log); err != nil {
		return Report{}, err
	}
	var arches []string
	for _, r := range sel {
		if !contains(arches, r.Arch) {
			arches = append(arches, r.Arch)
		}
	}
	if err := chroot.Sweep(chroot.Cache{Dir: o.CacheDir}.UnpackDir(o.Work)); err != nil {
		return Report{}, fmt.Errorf("roots left by an interrupted run: %w", err)
	}
	pk, err := BuildPackages(ctx, o.Tree, o.Work, arches, o.Previous, o.Log)
	if err != nil {
		return Report{}, err
	}
	rn := &Runner{Tree: o.Tree, Work: o.Work, Cache: chroot.Cache{Dir: o.CacheDir, Log: o.Log}, Packages: pk, Log: o.Log}
	os.RemoveAll(filepath.Join(o.Work, "kit"))
	var results []Result
	var failed []string
	for _, row := range sel {
		fmt.Fprintf(o.Log, "matrix: == %s (%s %s, %s, %s)\n", row.Name, row.Distribution, row.Release, row.Arch, row.Format)
		res := rn.Run(ctx, row)
		if ctx.Err() != nil {
			return Report{}, ctx.Err()
		}
		results = append(results, res)
		for _, c := range res.Cells {
			if c.Status == Fail {
				failed = append(failed, row.Name+"/"+c.Step)
			}
		}
	}
	old, err := ReadReport(filepath.Join(o.ReportDir, "matrix.json"))
	if err != nil {
		fmt.Fprintf(o.Log, "matrix: ignoring the old results: %v\n", err)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	rep := Merge(old, rows, results, now)
	if w := warmDebian(rep); w != nil {
		rep.Warm = w
	}
	if err := os.MkdirAll(o.ReportDir, 0o755); err != nil {
		return rep, err
	}
	if err := WriteReport(o.ReportDir, rep); err != nil {
		return rep, err
	}
	fmt.Fprintf(o.Log, "matrix: wrote matrix.json and MATRIX.md into %s; logs in %s\n", o.ReportDir, filepath.Join(o.Work, "logs"))
	if len(failed) > 0 {
		return rep, fmt.Errorf("%w: %s", ErrCellsFailed, strings.Join(failed, ", "))
	}
	return rep, nil
}

// warmDebian sums the durations the report shows for the Debian rows, when every one
// of them ran with its root from the cache on this machine: the time a warm run of
// the Debian rows takes (package building not included).
func warmDebian(rep Report) *WarmRun {
	w := &WarmRun{Cores: runtime.NumCPU()}
	for _, r := range rep.Rows {
		if !r.Row.Runnable() || r.Row.Distribution != "Debian" {
			continue
		}
		if !r.RootCached || r.Seconds == 0 {
			return nil
		}
		w.Seconds += r.Seconds
		w.Rows = append(w.Rows, r.Row.Name)
		if r.Date > w.Date {
			w.Date = r.Date
		}
	}
	if len(w.Rows) == 0 {
		return nil
	}
	w.Seconds = round(w.Seconds)
	return w
}

// ensureTools installs the runner's host tools with apt-get when they are missing.
func ensureTools(ctx context.Context, log io.Writer) error {
	var missing []string
	for cmd, pkg := range Tools {
		if _, err := exec.LookPath(cmd); err != nil && !contains(missing, pkg) {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	fmt.Fprintf(log, "matrix: apt-get install %s\n", strings.Join(missing, " "))
	args := append([]string{"install", "-y", "--no-install-recommends"}, missing...)
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("matrix needs %s: apt-get install failed: %w", strings.Join(missing, " "), err)
	}
	return nil
}

// StageKit writes what CI's container jobs need into dir: kit.sh and container.sh,
// smtpsend for each architecture (smtpsend-<arch>) and for the runner host
// (smtpsend-host), and the packages under test and of the previous build (pkg/current,
// pkg/previous) for the architectures of the rows that run in containers.
func StageKit(ctx context.Context, tree, dir string, log io.Writer) error {
	if log == nil {
		log = os.Stdout
	}
	rows, err := LoadRows(filepath.Join(tree, "distros"))
	if err != nil {
		return err
	}
	var arches []string
	for _, r := range rows {
		if !r.Runnable() && !contains(arches, r.Arch) {
			arches = append(arches, r.Arch)
		}
	}
	if len(arches) == 0 {
		return errors.New("no row runs in a container")
	}
	work := filepath.Join(tree, "build", "matrix")
	pk, err := BuildPackages(ctx, tree, work, arches, os.Getenv(PreviousEnv), log)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for _, d := range []string{"pkg/current", "pkg/previous"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	copyFile := func(src, dst string, mode os.FileMode) error {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, mode)
	}
	for sub, m := range map[string]map[string]string{"current": pk.Current, "previous": pk.Previous} {
		for _, f := range m {
			if err := copyFile(f, filepath.Join(dir, "pkg", sub, filepath.Base(f)), 0o644); err != nil {
				return err
			}
		}
	}
	if pk.PreviousWhy != "" {
		fmt.Fprintf(log, "matrix: no previous build in the kit: %s\n", pk.PreviousWhy)
	}
	for _, s := range []string{"kit.sh", "container.sh"} {
		if err := copyFile(filepath.Join(tree, "packaging", "kit", s), filepath.Join(dir, s), 0o755); err != nil {
			return err
		}
	}
	rn := &Runner{Tree: tree, Work: filepath.Join(work, "stage")}
	os.RemoveAll(rn.Work)
	for _, a := range append([]string{chroot.HostArch()}, arches...) {
		bin, err := rn.kitBinary(ctx, a)
		if err != nil {
			return err
		}
		name := "smtpsend-" + a
		if err := copyFile(bin, filepath.Join(dir, name), 0o755); err != nil {
			return err
		}
		if a == chroot.HostArch() {
			if err := copyFile(bin, filepath.Join(dir, "smtpsend-host"), 0o755); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(log, "matrix: kit staged in %s (packages %s, previous %s)\n", dir, pk.Version, pk.PreviousVersion)
	return nil
}

// WriteWorkflow regenerates .github/workflows/matrix.yml from distros/*.yaml.
func WriteWorkflow(tree string) error {
	rows, err := LoadRows(filepath.Join(tree, "distros"))
	if err != nil {
		return err
	}
	wf, err := Workflow(rows)
	if err != nil {
		return err
	}
	p := filepath.Join(tree, WorkflowPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return writeFile(p, []byte(wf))
}
