package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Log is a log that several goroutines and child processes write while a test reads
// it: an io.Writer safe for concurrent use. The zero value is an empty log.
type Log struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the log.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Len returns the number of bytes written so far: an offset for Since.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

// Since returns what was written after the first off bytes.
func (l *Log) Since(off int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if off > l.b.Len() {
		off = l.b.Len()
	}
	return string(l.b.Bytes()[off:])
}

// MTAGuard is the default MTAOptions.Guard.
const MTAGuard = 3 * time.Minute

// MTAOptions shape an MTA started by StartMTA. The zero value runs
// "qmail-start ./Maildir/" in the home with a log of its own.
type MTAOptions struct {
	// Args are qmail-start's arguments. Default ["./Maildir/"]: no logger argument,
	// so qmail-send's log comes out on qmail-start's standard output, as boot/home
	// runs it under supervise.
	Args []string
	// Env is added to the home's environment (Home.Env).
	Env []string
	// Dir is the working directory. Default the home's Dir.
	Dir string
	// Log collects qmail-start's standard output and error. Default a new Log; pass
	// one Log to several MTAs to keep the log of several runs together.
	Log *Log
	// Guard bounds every wait, so that a broken MTA fails the test instead of hanging
	// it: a deadlock guard, not a speed expectation. Default MTAGuard.
	Guard time.Duration
}

// MTA is a running qmail-start, in a process group of its own: qmail-start,
// qmail-send, the other daemons and their deliveries.
type MTA struct {
	t        testing.TB
	cmd      *exec.Cmd
	pid      int
	log      *Log
	logStart int
	guard    time.Duration
	exited   chan struct{} // closed when qmail-start has exited; err is then set
	err      error
}

// StartMTA starts qmail-start (bin/qmail-start, so it works as well for a Home that
// describes a home owned by root, where no program takes sandbox mode). It fails the
// test if qmail-start cannot be started.
//
// When the test ends with the MTA still running, its cleanup kills the process group
// if the test has failed, so that no daemon outlives it; otherwise it stops the MTA
// as Stop does.
func (h *Home) StartMTA(t testing.TB, opt MTAOptions) *MTA {
	t.Helper()
	if opt.Args == nil {
		opt.Args = []string{"./Maildir/"}
	}
	if opt.Log == nil {
		opt.Log = &Log{}
	}
	if opt.Guard == 0 {
		opt.Guard = MTAGuard
	}
	cmd := h.Command("qmail-start", opt.Args...)
	cmd.Env = append(cmd.Env, opt.Env...)
	if opt.Dir != "" {
		cmd.Dir = opt.Dir
	}
	cmd.Stdout, cmd.Stderr = opt.Log, opt.Log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	m := &MTA{t: t, log: opt.Log, logStart: opt.Log.Len(), guard: opt.Guard, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("qmail-start: %v", err)
	}
	m.cmd, m.pid = cmd, cmd.Process.Pid
	go func() {
		m.err = cmd.Wait()
		close(m.exited)
	}()
	t.Cleanup(func() {
		if m.hasExited() {
			return
		}
		if t.Failed() {
			m.Kill()
			return
		}
		m.Stop()
	})
	return m
}

func (m *MTA) hasExited() bool {
	select {
	case <-m.exited:
		return true
	default:
		return false
	}
}

// PID returns qmail-start's process id, which is also its process group's.
func (m *MTA) PID() int { return m.pid }

// Log returns the log qmail-start writes to.
func (m *MTA) Log() *Log { return m.log }

// Output returns what this run wrote to the log: the log since the MTA started.
func (m *MTA) Output() string { return m.log.Since(m.logStart) }

// logTail is the end of the log, for failure messages.
func (m *MTA) logTail() string {
	s := m.log.String()
	if len(s) > 8000 {
		return "...\n" + s[len(s)-8000:]
	}
	return s
}

// Signal sends sig to qmail-start, which passes SIGALRM, SIGHUP and SIGTERM on to
// qmail-send. It does not fail the test, so it may be called from any goroutine.
func (m *MTA) Signal(sig syscall.Signal) error {
	return m.cmd.Process.Signal(sig)
}

// Alarm has qmail-send retry every message now (SIGALRM). It fails the test if the
// MTA has exited or the signal cannot be sent.
func (m *MTA) Alarm() {
	m.t.Helper()
	m.Running()
	if err := m.Signal(syscall.SIGALRM); err != nil {
		m.t.Fatalf("SIGALRM to qmail-start: %v", err)
	}
}

// Running fails the test if qmail-start has exited.
func (m *MTA) Running() {
	m.t.Helper()
	if m.hasExited() {
		m.t.Fatalf("qmail-start exited: %v\nlog:\n%s", m.err, m.logTail())
	}
}

// Exited reports whether qmail-start has exited, and if so its exit status.
func (m *MTA) Exited() (bool, error) {
	if m.hasExited() {
		return true, m.err
	}
	return false, nil
}

// WaitFor polls cond until it holds. It fails the test if the MTA exits meanwhile or
// cond does not hold within the guard; what names the awaited state in that failure.
func (m *MTA) WaitFor(what string, cond func() bool) {
	m.t.Helper()
	deadline := time.Now().Add(m.guard)
	for !cond() {
		if m.hasExited() {
			m.t.Fatalf("qmail-start exited (%v) while waiting for %s\nlog:\n%s", m.err, what, m.logTail())
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("waited %v for %s\nlog:\n%s", m.guard, what, m.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitLog waits, as WaitFor does, until this run's output (Output) contains s.
func (m *MTA) WaitLog(s string) {
	m.t.Helper()
	m.WaitFor(fmt.Sprintf("%q in the log", s), func() bool { return strings.Contains(m.Output(), s) })
}

// Wait waits for qmail-start to exit and returns its exit status. If it has not
// exited within the guard, Wait kills the process group and fails the test. Once
// qmail-start has exited, Wait returns at once.
func (m *MTA) Wait() error {
	m.t.Helper()
	select {
	case <-m.exited:
		return m.err
	case <-time.After(m.guard):
		syscall.Kill(-m.pid, syscall.SIGKILL)
		<-m.exited
		m.t.Fatalf("qmail-start did not exit within %v\nlog:\n%s", m.guard, m.logTail())
		return m.err
	}
}

// Stop ends the MTA as a supervisor does, with SIGTERM, and waits for it as Wait does;
// it returns qmail-start's exit status, which the caller judges. Stopping an MTA that
// has exited returns its status.
func (m *MTA) Stop() error {
	m.t.Helper()
	if m.hasExited() {
		return m.err
	}
	m.Signal(syscall.SIGTERM)
	return m.Wait()
}

// Kill sends SIGKILL to the MTA's whole process group, as a crash or an OOM kill of
// everything would, and waits for qmail-start to exit.
func (m *MTA) Kill() {
	syscall.Kill(-m.pid, syscall.SIGKILL)
	<-m.exited
}

// Children maps the command names of qmail-start's child processes (qmail-send,
// qmail-lspawn, qmail-rspawn, qmail-clean and a logger) to their pids.
func (m *MTA) Children() map[string]int { return children(m.pid) }

// SendPID returns qmail-send's pid, or 0 if qmail-start has no qmail-send child.
func (m *MTA) SendPID() int { return m.Children()["qmail-send"] }

// children maps the command names of a process's children to their pids, from /proc.
func children(ppid int) map[string]int {
	kids := map[string]int{}
	for _, c := range ChildProcs(ppid) {
		kids[c.Name] = c.PID
	}
	return kids
}

// Proc is a process seen in /proc: its pid and command name.
type Proc struct {
	PID  int
	Name string
}

// ChildProcs lists the children of ppid, from /proc, for tests that look at an MTA's
// process tree (several children may share a name, such as qmail-local workers).
func ChildProcs(ppid int) []Proc {
	var kids []Proc
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		if f := strings.Fields(s[close+1:]); len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			kids = append(kids, Proc{pid, s[open+1 : close]})
		}
	}
	return kids
}
