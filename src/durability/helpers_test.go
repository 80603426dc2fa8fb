package durability

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/testpeer"
)

// traced is one program run under strace.
type traced struct {
	t      *testing.T
	file   string // the trace
	events []Event
}

// straceArgs is strace's command line for recording into file, with extra options
// (such as -e inject=...) before the command.
func straceArgs(t *testing.T, file string, extra []string, argv ...string) []string {
	t.Helper()
	strace := testpeer.Need(t, "strace")
	args := []string{strace, "-f", "-tt", "-y", "-s", "256", "-o", file, "-e", "trace=" + TraceSyscalls}
	args = append(args, extra...)
	return append(append(args, "--"), argv...)
}

// load parses the trace; it fails the test on a parse error.
func (tr *traced) load() []Event {
	tr.t.Helper()
	ev, err := ReadTrace(tr.file)
	if err != nil {
		tr.t.Fatal(err)
	}
	tr.events = ev
	return ev
}

// dump is the trace's text, for failure messages: its end, or all of it when
// $DURABILITY_DUMP is set.
func (tr *traced) dump() string {
	b, _ := os.ReadFile(tr.file)
	if len(b) > 20000 && os.Getenv("DURABILITY_DUMP") == "" {
		b = append([]byte("...\n"), b[len(b)-20000:]...)
	}
	return string(b)
}

// realDir is dir with symbolic links resolved, as strace -y prints descriptor paths.
func realDir(t *testing.T, dir string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runQueue runs the home's bin/qmail-queue under strace with the message on fd 0 and
// the envelope on fd 1, and returns its exit code and standard error.
func runQueue(t *testing.T, h *sandbox.Home, trace string, extra []string, msg, env string) (int, string) {
	t.Helper()
	argv := straceArgs(t, trace, extra, filepath.Join(h.Bin, "qmail-queue"))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = h.Env(), h.Dir
	er, ew, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer er.Close()
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(msg), er, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	er.Close()
	// The envelope is small: the pipe holds it all, so this never blocks.
	if _, err := ew.WriteString(env); err != nil {
		t.Fatal(err)
	}
	ew.Close()
	return exitCode(t, cmd.Wait()), stderr.String()
}

// exitCode is a finished command's exit status; it fails the test if the command
// could not be run or was killed.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok && ee.Exited() {
		return ee.ExitCode()
	}
	t.Fatalf("run: %v", err)
	return -1
}

// envelope is qmail-queue's envelope for one sender and recipients.
func envelope(sender string, rcpts ...string) string {
	s := "F" + sender + "\x00"
	for _, r := range rcpts {
		s += "T" + r + "\x00"
	}
	return s + "\x00"
}

// find returns the first event at or after from for which match holds, or nil.
func find(ev []Event, from int, match func(Event) bool) *Event {
	for i := range ev {
		if ev[i].Seq >= from && match(ev[i]) {
			return &ev[i]
		}
	}
	return nil
}

// exitOf returns the exit event (exit_group) with which process pid ended, or nil.
// Go's threads each show their own pid; the process's is the one that called
// exit_group.
func exitOf(ev []Event, status int) *Event {
	return find(ev, 0, func(e Event) bool { return e.Call == "exit_group" && e.Args == fmt.Sprint(status) })
}

// syncedBetween is SyncedBefore, failing the test (but not stopping it) on an error.
func syncedBetween(t *testing.T, ev []Event, cwd, path string, before int, what string) int {
	t.Helper()
	seq, err := SyncedBefore(ev, cwd, path, before)
	if err != nil {
		t.Errorf("%s: %v", what, err)
	}
	return seq
}

// dirSyncedBetween is DirSyncedBetween, failing the test (but not stopping it) on an
// error.
func dirSyncedBetween(t *testing.T, ev []Event, dir string, after, before int, what string) int {
	t.Helper()
	seq, err := DirSyncedBetween(ev, dir, after, before)
	if err != nil {
		t.Errorf("%s: %v", what, err)
	}
	return seq
}

// linkInto returns the first successful link or rename (any flavour) whose new name
// lies in directory dir.
func linkInto(ev []Event, cwd, dir string) *Event {
	return find(ev, 0, func(e Event) bool {
		return IsLink(e) && e.OK() && len(e.Paths(cwd)) == 2 && filepath.Dir(e.Paths(cwd)[1]) == dir
	})
}

// files lists the regular files under dir, relative to it.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			r, _ := filepath.Rel(dir, p)
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
