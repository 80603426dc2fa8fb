package testrun

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/testpeer"
)

// fakeSystem records the commands a run executes and lets a test decide which peers
// exist and which commands fail.
type fakeSystem struct {
	have  map[string]bool
	fail  map[string]int // command line prefix -> how many times it fails
	calls []string
	envs  [][]string
	// installs maps "apt-get install" to the commands it provides.
	installs []string
}

func (f *fakeSystem) options(euid int, debian bool) (Options, *bytes.Buffer) {
	var out bytes.Buffer
	return Options{
		Root:   "/src",
		Stdout: &out,
		Stderr: &out,
		Peers:  map[string]string{"cdb": "tinycdb", "swaks": "swaks", "smtp-sink": "postfix", "smtp-source": "postfix"},
		LookPath: func(c string) (string, error) {
			if f.have[c] {
				return "/usr/bin/" + c, nil
			}
			return "", errors.New("not found")
		},
		Euid:     func() int { return euid },
		IsDebian: func() bool { return debian },
		Exec: func(ctx context.Context, dir string, env []string, name string, args ...string) error {
			line := filepath.Base(name) + " " + strings.Join(args, " ")
			f.calls = append(f.calls, line)
			f.envs = append(f.envs, env)
			for prefix, n := range f.fail {
				if strings.HasPrefix(line, prefix) && n > 0 {
					f.fail[prefix] = n - 1
					return errors.New("exit status 1")
				}
			}
			if strings.HasPrefix(line, "apt-get install") {
				for _, c := range f.installs {
					f.have[c] = true
				}
			}
			return nil
		},
	}, &out
}

func TestMissingPackages(t *testing.T) {
	f := &fakeSystem{have: map[string]bool{"cdb": true}}
	o, _ := f.options(0, true)
	got := MissingPackages(o.Peers, o.LookPath)
	if strings.Join(got, " ") != "postfix swaks" {
		t.Errorf("missing = %q, want postfix once and swaks", got)
	}
}

func TestNotRootGetsTheSudoLine(t *testing.T) {
	f := &fakeSystem{have: map[string]bool{"cdb": true}}
	o, _ := f.options(1000, true)
	err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "sudo apt-get install -y postfix swaks") {
		t.Fatalf("err = %v", err)
	}
	if len(f.calls) != 0 {
		t.Errorf("ran %q without the peers", f.calls)
	}
}

func TestNotDebianNamesThePackages(t *testing.T) {
	f := &fakeSystem{have: map[string]bool{}}
	o, _ := f.options(0, false)
	err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "tinycdb") || len(f.calls) != 0 {
		t.Fatalf("err = %v, calls %q", err, f.calls)
	}
}

func TestRootInstallsThenTests(t *testing.T) {
	f := &fakeSystem{have: map[string]bool{"cdb": true}, installs: []string{"swaks", "smtp-sink", "smtp-source"}}
	o, out := f.options(0, true)
	if err := Run(context.Background(), o); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := []string{
		"apt-get install -y --no-install-recommends postfix swaks",
		"go vet ./...",
		"go test -count=1 ./...",
	}
	if strings.Join(f.calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(f.calls, "\n"), strings.Join(want, "\n"))
	}
	if got := strings.Join(f.envs[2], " "); !strings.Contains(got, testpeer.RequireEnv+"=1") {
		t.Errorf("go test env %q lacks %s=1", got, testpeer.RequireEnv)
	}
	if !strings.Contains(out.String(), "PASS") {
		t.Errorf("no PASS line:\n%s", out)
	}
}

// In the project tree the sandbox binaries are built once and handed to go test.
func TestSandboxBinariesBuiltOnce(t *testing.T) {
	root := t.TempDir()
	for _, b := range sandbox.Binaries {
		os.MkdirAll(filepath.Join(root, "src", "cmd", b), 0o755)
	}
	f := &fakeSystem{have: map[string]bool{"cdb": true, "swaks": true, "smtp-sink": true, "smtp-source": true}}
	o, out := f.options(0, true)
	o.Root = root
	if err := Run(context.Background(), o); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(f.calls) != 3 || !strings.HasPrefix(f.calls[1], "go build -o ") ||
		!strings.HasSuffix(f.calls[1], " ./src/cmd/"+strings.Join(sandbox.Binaries, " ./src/cmd/")) {
		t.Fatalf("calls = %q", f.calls)
	}
	var binDir string
	for _, kv := range f.envs[2] {
		if v, ok := strings.CutPrefix(kv, sandbox.BinEnv+"="); ok {
			binDir = v
		}
	}
	if binDir == "" || !strings.Contains(f.calls[1], binDir) {
		t.Errorf("go test env %q does not point %s at the build's output (%s)", f.envs[2], sandbox.BinEnv, f.calls[1])
	}
	if _, err := os.Stat(binDir); !os.IsNotExist(err) {
		t.Errorf("binary directory %s left behind", binDir)
	}
}

// A first install failure (stale package lists) triggers apt-get update and one retry.
func TestRootUpdatesOnlyWhenInstallFails(t *testing.T) {
	f := &fakeSystem{have: map[string]bool{"cdb": true}, installs: []string{"swaks", "smtp-sink", "smtp-source"},
		fail: map[string]int{"apt-get install": 1}}
	o, out := f.options(0, true)
	if err := Run(context.Background(), o); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(f.calls) < 3 || f.calls[1] != "apt-get update" || !strings.HasPrefix(f.calls[2], "apt-get install") {
		t.Errorf("calls = %q", f.calls)
	}
}

func TestPeersStillMissingIsAnError(t *testing.T) {
	f := &fakeSystem{have: map[string]bool{}}
	o, _ := f.options(0, true)
	err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "still missing") {
		t.Fatalf("err = %v", err)
	}
}

func TestFailingStepsAreReported(t *testing.T) {
	f := &fakeSystem{have: map[string]bool{"cdb": true, "swaks": true, "smtp-sink": true, "smtp-source": true},
		fail: map[string]int{"go test": 1}}
	o, out := f.options(0, true)
	err := Run(context.Background(), o)
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(out.String(), "FAIL: go test ./...") || len(f.calls) != 2 {
		t.Errorf("output:\n%s\ncalls %q", out, f.calls)
	}
}

// With the real go command: a module whose test fails makes Run fail, with the test's
// own output streamed through; one that passes makes it pass.
func TestRealGoTest(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	for _, c := range []struct {
		body string
		pass bool
	}{
		{`if 1+1 != 2 { t.Fatal("math") }`, true},
		{`t.Fatal("BROKEN-ON-PURPOSE")`, false},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.org/m\n\ngo 1.21\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "m.go"), []byte("package m\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "m_test.go"), []byte("package m\nimport \"testing\"\nfunc TestX(t *testing.T) { "+c.body+" }\n"), 0o644)
		var out bytes.Buffer
		err := Run(context.Background(), Options{Root: dir, Stdout: &out, Stderr: &out, Peers: map[string]string{}})
		if c.pass != (err == nil) {
			t.Errorf("pass=%v but err=%v\n%s", c.pass, err, out.String())
		}
		if !c.pass && !strings.Contains(out.String(), "BROKEN-ON-PURPOSE") {
			t.Errorf("failing test's output not streamed:\n%s", out.String())
		}
	}
}

// treeWithRow makes a root whose distros/ holds the project's every-change row.
func treeWithRow(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "distros"), 0o755)
	b, err := os.ReadFile("../../distros/debian-12-amd64.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "distros", "debian-12-amd64.yaml"), b, 0o644)
	return root
}

// As root, the CI row of the matrix runs after the unit tests, reporting under build/.
func TestMatrixRowRunsAfterTheTests(t *testing.T) {
	t.Setenv(SkipMatrixEnv, "")
	f := &fakeSystem{have: map[string]bool{"cdb": true, "swaks": true, "smtp-sink": true, "smtp-source": true}}
	o, out := f.options(0, true)
	o.Root = treeWithRow(t)
	if err := Run(context.Background(), o); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if n := len(f.calls); n != 3 || f.calls[1] != "go test -count=1 ./..." || f.calls[2] != "go run mage.go matrix debian-12-amd64" {
		t.Fatalf("calls %q", f.calls)
	}
	if env := strings.Join(f.envs[2], " "); !strings.Contains(env, "NOTQMAIL_MATRIX_REPORT="+filepath.Join(o.Root, "build", "matrix", "ci-report")) {
		t.Errorf("matrix env %q does not redirect the report", env)
	}
	// A failing row fails the run.
	f2 := &fakeSystem{have: f.have, fail: map[string]int{"go run mage.go matrix": 1}}
	o2, out2 := f2.options(0, true)
	o2.Root = o.Root
	if err := Run(context.Background(), o2); !errors.Is(err, ErrFailed) || !strings.Contains(out2.String(), "FAIL: matrix row debian-12-amd64") {
		t.Fatalf("err = %v\n%s", err, out2)
	}
}

func TestMatrixRowNotRootOrSkipped(t *testing.T) {
	have := map[string]bool{"cdb": true, "swaks": true, "smtp-sink": true, "smtp-source": true}
	t.Setenv(SkipMatrixEnv, "")
	f := &fakeSystem{have: have}
	o, out := f.options(1000, true)
	o.Root = treeWithRow(t)
	if err := Run(context.Background(), o); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(f.calls) != 2 || !strings.Contains(out.String(), "sudo go run mage.go matrix debian-12-amd64") {
		t.Errorf("non-root: calls %q\n%s", f.calls, out)
	}
	t.Setenv(SkipMatrixEnv, "1")
	f = &fakeSystem{have: have}
	o, out = f.options(0, true)
	o.Root = treeWithRow(t)
	if err := Run(context.Background(), o); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(f.calls) != 2 || !strings.Contains(out.String(), "skipped (NOTQMAIL_SKIP_MATRIX is set)") {
		t.Errorf("skipped: calls %q\n%s", f.calls, out)
	}
}
