package e2e

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/testpeer"
)

const domain = "sandbox.example"

// guard bounds every wait so that a broken MTA fails the test instead of hanging it.
// It is a deadlock guard, not a speed expectation.
const guard = 3 * time.Minute

// daemons are the programs qmail-start runs.
var daemons = []string{"qmail-start", "qmail-send", "qmail-lspawn", "qmail-rspawn", "qmail-clean", "qmail-local"}

// needDaemons stops the test when the sandbox's binary does not serve the delivery
// daemons yet: a failure under `mage test` (peers required), a skip otherwise.
func needDaemons(t *testing.T, h *sandbox.Home) {
	t.Helper()
	var missing []string
	for _, d := range daemons {
		if _, err := os.Lstat(filepath.Join(h.Bin, d)); err != nil {
			missing = append(missing, d)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "the sandbox's notqmail does not serve " + strings.Join(missing, ", ")
	if os.Getenv(testpeer.RequireEnv) != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// syncBuffer collects qmail-send's log while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// mta is a running qmail-start: after its exec, its process is qmail-send.
type mta struct {
	t        *testing.T
	cmd      *exec.Cmd
	log      *syncBuffer
	exited   chan struct{}
	err      error // qmail-send's exit status, once exited is closed
	stopOnce sync.Once
}

// startMTA runs "qmail-start ./Maildir/" in the home, with qmail-send's log (no
// logger argument) on qmail-start's standard output, as boot/home does under
// supervise.
func startMTA(t *testing.T, h *sandbox.Home) *mta {
	t.Helper()
	m := &mta{t: t, log: &syncBuffer{}, exited: make(chan struct{})}
	m.cmd = h.Command("qmail-start", "./Maildir/")
	m.cmd.Stdout = m.log
	m.cmd.Stderr = m.log
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("qmail-start: %v", err)
	}
	go func() {
		m.err = m.cmd.Wait()
		close(m.exited)
	}()
	t.Cleanup(m.stop)
	return m
}

// alarm sends SIGALRM to qmail-send: retry everything now.
func (m *mta) alarm() {
	m.t.Helper()
	m.running()
	if err := m.cmd.Process.Signal(syscall.SIGALRM); err != nil {
		m.t.Fatalf("SIGALRM to qmail-send: %v", err)
	}
}

// stop sends SIGTERM and waits for qmail-send to finish its deliveries and exit.
func (m *mta) stop() {
	m.stopOnce.Do(func() {
		select {
		case <-m.exited:
			return // running() reported it
		default:
		}
		m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.exited:
			if m.err != nil {
				m.t.Errorf("qmail-send did not exit cleanly on SIGTERM: %v\nlog:\n%s", m.err, m.log.String())
			}
		case <-time.After(guard):
			m.cmd.Process.Kill()
			<-m.exited
			m.t.Errorf("qmail-send ignored SIGTERM\nlog:\n%s", m.log.String())
		}
	})
}

// running fails the test if qmail-send has exited.
func (m *mta) running() {
	m.t.Helper()
	select {
	case <-m.exited:
		m.t.Fatalf("qmail-send exited: %v\nlog:\n%s", m.err, m.log.String())
	default:
	}
}

// waitFor polls cond until it holds, failing the test after the guard.
func (m *mta) waitFor(what string, cond func() bool) {
	m.t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		m.running()
		if time.Now().After(deadline) {
			m.t.Fatalf("waited %v for %s\nlog:\n%s", guard, what, m.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// queueEmpty reports whether no message is left in the queue: nothing in todo/ and
// no info/ file (qmail-send removes info/ last).
func queueEmpty(h *sandbox.Home) bool {
	q := h.Queue()
	if ids, err := q.Todo(); err != nil || len(ids) > 0 {
		return false
	}
	empty := true
	filepath.WalkDir(filepath.Join(q.Dir, "info"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			empty = false
		}
		return nil
	})
	return empty
}

// ownedFile writes a file in the home owned by the sandbox's user, as that user's own
// files would be.
func ownedFile(t *testing.T, h *sandbox.Home, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, h.UID, h.GID); err != nil {
		t.Fatal(err)
	}
}

func ownedDir(t *testing.T, h *sandbox.Home, path string) {
	t.Helper()
	if err := os.Mkdir(path, 0700); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, h.UID, h.GID); err != nil {
		t.Fatal(err)
	}
}

func ownedMaildir(t *testing.T, h *sandbox.Home, path string) {
	t.Helper()
	ownedDir(t, h, path)
	for _, sub := range []string{"tmp", "new", "cur"} {
		ownedDir(t, h, filepath.Join(path, sub))
	}
}

// maildirFiles returns the contents of the messages in a Maildir's new/ and cur/.
func maildirFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(b))
		}
	}
	return out
}

func countFiles(dir string) int {
	n := 0
	for _, sub := range []string{"new", "cur", ""} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range ents {
			if e.Type().IsRegular() {
				n++
			}
		}
	}
	return n
}

// inject runs a program from the home's bin/ with a message on stdin.
func inject(h *sandbox.Home, msg string, prog string, args ...string) error {
	return injectEnv(h, nil, msg, prog, args...)
}

// injectEnv is inject with extra environment variables.
func injectEnv(h *sandbox.Home, env []string, msg string, prog string, args ...string) error {
	cmd := h.Command(prog, args...)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(msg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %q: %v: %s", prog, args, err, out.String())
	}
	return nil
}
