// Package testrun is `go run mage.go test`: it makes sure the real peer programs the
// tests talk to are installed (installing them with apt-get when it runs as root on
// Debian), then runs go vet and the whole test suite with missing peers as failures.
package testrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/notqmail/notqmail/packaging/matrix"
	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/testpeer"
)

// Options configure a run. The function fields default to the real system; tests
// replace them.
type Options struct {
	Root   string // module root
	Stdout io.Writer
	Stderr io.Writer

	Peers    map[string]string // command -> Debian package; default testpeer.Packages
	LookPath func(string) (string, error)
	Euid     func() int
	IsDebian func() bool
	// Exec runs a command in dir with extra environment, streaming its output.
	Exec func(ctx context.Context, dir string, env []string, name string, args ...string) error
}

func (o Options) withDefaults() Options {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Peers == nil {
		o.Peers = testpeer.Packages
	}
	if o.LookPath == nil {
		o.LookPath = exec.LookPath
	}
	if o.Euid == nil {
		o.Euid = os.Geteuid
	}
	if o.IsDebian == nil {
		o.IsDebian = isDebian
	}
	if o.Exec == nil {
		o.Exec = func(ctx context.Context, dir string, env []string, name string, args ...string) error {
			cmd := exec.CommandContext(ctx, name, args...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), env...)
			cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
			return cmd.Run()
		}
	}
	return o
}

func isDebian() bool {
	_, err := os.Stat("/etc/debian_version")
	return err == nil
}

// MissingPackages returns the Debian packages providing the peer commands that are not
// installed, sorted, without duplicates.
func MissingPackages(peers map[string]string, lookPath func(string) (string, error)) []string {
	seen := map[string]bool{}
	var out []string
	for cmd, pkg := range peers {
		if _, err := lookPath(cmd); err == nil || seen[pkg] {
			continue
		}
		seen[pkg] = true
		out = append(out, pkg)
	}
	sort.Strings(out)
	return out
}

// ErrFailed is returned when vet or the tests fail.
var ErrFailed = errors.New("tests failed")

// Run installs missing peers if it can, then runs go vet ./... and go test ./... in
// Root with NOTQMAIL_REQUIRE_PEERS=1, and reports a clear PASS or FAIL at the end.
func Run(ctx context.Context, o Options) error {
	o = o.withDefaults()
	if err := ensurePeers(ctx, o); err != nil {
		return err
	}
	gotool := goTool()
	env := []string{testpeer.RequireEnv + "=1"}
	type step struct {
		name string
		args []string
	}
	steps := []step{{"go vet ./...", []string{"vet", "./..."}}}
	// The sandbox tests of every package need the same binaries: build them once
	// here and hand them over, instead of once per test process.
	if bins := sandboxBinaries(o.Root); len(bins) > 0 {
		dir, err := os.MkdirTemp("", "notqmail-test-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		// A sandbox made by root belongs to nobody, who must reach the binaries.
		if err := os.Chmod(dir, 0o755); err != nil {
			return err
		}
		args := []string{"build", "-o", dir + string(os.PathSeparator)}
		for _, b := range bins {
			args = append(args, "./src/cmd/"+b)
		}
		steps = append(steps, step{"go build (sandbox binaries)", args})
		env = append(env, sandbox.BinEnv+"="+dir)
	}
	// -count=1: many tests run binaries built outside go test's view (the sandbox
	// binaries), so a cached pass could hide a change to the programs they run.
	steps = append(steps, step{"go test ./...", []string{"test", "-count=1", "./..."}})
	// Then every fuzz target searches past its kept corpus for a short while.
	if d := fuzzTime(); d != "" {
		targets, err := FuzzTargets(o.Root)
		if err != nil {
			return err
		}
		for _, t := range targets {
			steps = append(steps, step{"fuzz " + t.Dir + " " + t.Name + " (" + d + ")", fuzzArgs(t, d)})
		}
	}
	// Last, the distribution matrix's CI row: the packages installed and run in a
	// Debian root. It needs root; its report goes under build/, not over the committed
	// distros/ files.
	matrixNote := ""
	if row, ok := everyChangeRow(o.Root); ok {
		name := "matrix row " + row + " (go run mage.go matrix " + row + ")"
		switch {
		case os.Getenv(SkipMatrixEnv) != "":
			matrixNote = fmt.Sprintf("==> %s: skipped (%s is set)\n", name, SkipMatrixEnv)
		case o.Euid() != 0:
			matrixNote = fmt.Sprintf("==> %s: not run: it builds a Debian root and enters it with chroot, which needs root; run it with\n    sudo go run mage.go matrix %s\n", name, row)
		default:
			steps = append(steps, step{name, []string{"run", "mage.go", "matrix", row}})
			env = append(env, matrix.ReportEnv+"="+filepath.Join(o.Root, "build", "matrix", "ci-report"))
		}
	}
	var failed []string
	for _, s := range steps {
		fmt.Fprintf(o.Stdout, "==> %s\n", s.name)
		if err := o.Exec(ctx, o.Root, env, gotool, s.args...); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(o.Stdout, "==> %s: FAIL (%v)\n", s.name, err)
			failed = append(failed, s.name)
			continue
		}
		fmt.Fprintf(o.Stdout, "==> %s: ok\n", s.name)
	}
	fmt.Fprint(o.Stdout, matrixNote)
	if len(failed) > 0 {
		fmt.Fprintf(o.Stdout, "\nFAIL: %s\n", strings.Join(failed, ", "))
		return fmt.Errorf("%w: %s", ErrFailed, strings.Join(failed, ", "))
	}
	fmt.Fprintf(o.Stdout, "\nPASS: go vet and all tests, with real peers\n")
	return nil
}

// ensurePeers installs the packages of missing peers with apt-get when running as root
// on Debian; otherwise it stops with the one command that would install them.
func ensurePeers(ctx context.Context, o Options) error {
	missing := MissingPackages(o.Peers, o.LookPath)
	if len(missing) == 0 {
		return nil
	}
	line := "apt-get install -y " + strings.Join(missing, " ")
	if !o.IsDebian() {
		return fmt.Errorf("test peers missing; install the programs from these Debian packages (or your system's equivalents): %s", strings.Join(missing, " "))
	}
	if o.Euid() != 0 {
		return fmt.Errorf("test peers missing; run this, then try again:\n  sudo %s", line)
	}
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	install := append([]string{"install", "-y", "--no-install-recommends"}, missing...)
	fmt.Fprintf(o.Stdout, "==> %s\n", line)
	if err := o.Exec(ctx, o.Root, env, "apt-get", install...); err != nil {
		// Most often the package lists are absent or stale (a fresh container):
		// update them once and try again.
		fmt.Fprintf(o.Stdout, "==> apt-get update (the install failed: %v)\n", err)
		if err := o.Exec(ctx, o.Root, env, "apt-get", "update"); err != nil {
			return fmt.Errorf("apt-get update: %w", err)
		}
		if err := o.Exec(ctx, o.Root, env, "apt-get", install...); err != nil {
			return fmt.Errorf("%s: %w", line, err)
		}
	}
	if still := MissingPackages(o.Peers, o.LookPath); len(still) > 0 {
		return fmt.Errorf("after installing, peers from %s are still missing: check testpeer.Packages", strings.Join(still, " "))
	}
	return nil
}

// sandboxBinaries returns the sandbox's binaries that the tree at root has.
func sandboxBinaries(root string) []string {
	var bins []string
	for _, b := range sandbox.Binaries {
		if _, err := os.Stat(filepath.Join(root, "src", "cmd", b)); err == nil {
			bins = append(bins, b)
		}
	}
	return bins
}

func goTool() string {
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

// SkipMatrixEnv, when set, leaves the matrix row out of the test run (quick loops).
const SkipMatrixEnv = "NOTQMAIL_SKIP_MATRIX"

// everyChangeRow names the distros/ row CI runs on every change, if the tree has one.
func everyChangeRow(root string) (string, bool) {
	if _, err := os.Stat(filepath.Join(root, "distros")); err != nil {
		return "", false
	}
	rows, err := matrix.LoadRows(filepath.Join(root, "distros"))
	if err != nil {
		return "", false
	}
	r, ok := matrix.EveryChangeRow(rows)
	return r.Name, ok
}
