package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/version"
)

// Test programs, registered only in the test binary. Their names cannot clash with a
// real program's.
const (
	echoProg   = "zz-test-echo"
	whoamiProg = "zz-test-whoami"
)

var lastArgs []string

func init() {
	register(echoProg, func(args []string) int {
		lastArgs = args
		fmt.Println("echo:" + strings.Join(args, ","))
		return 7
	})
	register(whoamiProg, func(args []string) int {
		fmt.Println(os.Getuid())
		return 0
	})
}

// dispatchEnv makes the test binary behave as the multi-call binary, so the tests can
// run it through real links named after programs.
const dispatchEnv = "NOTQMAIL_TEST_DISPATCH"

func TestMain(m *testing.M) {
	if os.Getenv(dispatchEnv) == "1" {
		os.Exit(dispatch(os.Args))
	}
	os.Exit(m.Run())
}

// capture runs f with os.Stdout going to a pipe and returns what it wrote.
func capture(t *testing.T, f func() int) (string, int) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	code := f()
	os.Stdout = old
	w.Close()
	return string(<-done), code
}

func noSandbox(t *testing.T) {
	t.Setenv("QMAILHOME", "")
	os.Unsetenv("QMAILHOME")
}

func TestDispatchByArgv0(t *testing.T) {
	noSandbox(t)
	lastArgs = nil
	out, code := capture(t, func() int { return dispatch([]string{"/var/qmail/bin/" + echoProg, "a", "b c"}) })
	if code != 7 || out != "echo:a,b c\n" || !slices.Equal(lastArgs, []string{"a", "b c"}) {
		t.Errorf("by argv[0]: code %d, out %q, args %q", code, out, lastArgs)
	}
}

func TestDispatchByFirstArgument(t *testing.T) {
	noSandbox(t)
	lastArgs = nil
	out, code := capture(t, func() int { return dispatch([]string{"/usr/lib/notqmail/bin/notqmail", echoProg, "x"}) })
	if code != 7 || out != "echo:x\n" || !slices.Equal(lastArgs, []string{"x"}) {
		t.Errorf("by argument: code %d, out %q, args %q", code, out, lastArgs)
	}
	// A program name as argv[0] wins: its arguments are its own even when one of them
	// names another program.
	lastArgs = nil
	_, code = capture(t, func() int { return dispatch([]string{echoProg, "--list"}) })
	if code != 7 || !slices.Equal(lastArgs, []string{"--list"}) {
		t.Errorf("argv[0] program got args %q, code %d", lastArgs, code)
	}
}

func TestList(t *testing.T) {
	noSandbox(t)
	out, code := capture(t, func() int { return dispatch([]string{"notqmail", "--list"}) })
	if code != 0 {
		t.Fatalf("--list exit %d", code)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if !slices.IsSorted(lines) || !slices.Contains(lines, echoProg) || len(lines) != len(programs) {
		t.Errorf("--list printed %q; want every registered program, sorted", lines)
	}
	if slices.Contains(lines, "notqmail") || slices.Contains(lines, "qmail-queue") {
		t.Errorf("--list names notqmail or qmail-queue, which it does not serve: %q", lines)
	}
}

func TestVersion(t *testing.T) {
	noSandbox(t)
	out, code := capture(t, func() int { return dispatch([]string{"notqmail", "--version"}) })
	if code != 0 || out != "notqmail "+version.Version+"\n" {
		t.Errorf("--version: %d %q", code, out)
	}
}

func TestUnknownNames(t *testing.T) {
	noSandbox(t)
	for _, argv := range [][]string{
		{"notqmail", "qmail-nonesuch"},
		{"notqmail", "../" + echoProg},
		{"/usr/bin/qmail-nonesuch"},
		{"notqmail"},
	} {
		out, code := capture(t, func() int { return dispatch(argv) })
		if code != 100 {
			t.Errorf("%q: exit %d, want 100", argv, code)
		}
		if strings.Contains(out, "echo:") {
			t.Errorf("%q ran a program: %q", argv, out)
		}
	}
}

// The real thing: a link named after a program, executed by the kernel.
func TestDispatchThroughALink(t *testing.T) {
	noSandbox(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range []string{echoProg, "qmail-nonesuch"} {
		if err := os.Symlink(self, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) (string, int) {
		cmd := exec.Command(filepath.Join(dir, name), args...)
		cmd.Env = append(os.Environ(), dispatchEnv+"=1")
		var out bytes.Buffer
		cmd.Stdout = &out
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), 0
	}
	if out, code := run(echoProg, "1", "2"); code != 7 || out != "echo:1,2\n" {
		t.Errorf("through a link: %d %q", code, out)
	}
	if _, code := run("qmail-nonesuch"); code != 100 {
		t.Errorf("unknown link name: exit %d, want 100", code)
	}
}

// Run by root in a sandbox home, a program runs as the home's owner: the dispatcher
// drops privileges before the program starts.
func TestDispatchEntersSandbox(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to show the drop to the sandbox owner")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	parent, err := os.MkdirTemp("", "notqmail-dispatch-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(parent)
	os.Chmod(parent, 0o755)
	homeDir := filepath.Join(parent, "home")
	if err := os.Mkdir(homeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	const owner = 65534
	if err := os.Chown(homeDir, owner, owner); err != nil {
		t.Fatal(err)
	}
	// The test binary may sit where nobody cannot read it; give the owner a copy.
	bin := filepath.Join(parent, whoamiProg)
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), dispatchEnv+"=1", "QMAILHOME="+homeDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != strconv.Itoa(owner) {
		t.Errorf("program ran as uid %s, want the sandbox owner %d", got, owner)
	}
}

func TestDispatchEmptyArgv(t *testing.T) {
	if got := dispatch(nil); got != 100 {
		t.Fatalf("dispatch(nil) = %d, want 100 (usage)", got)
	}
}
