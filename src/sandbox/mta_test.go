package sandbox

import (
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestLogConcurrentWritesAndSince(t *testing.T) {
	var l Log
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				fmt.Fprintf(&l, "g%d line %d\n", g, i)
			}
		}()
	}
	wg.Wait()
	if n := strings.Count(l.String(), "\n"); n != 400 {
		t.Errorf("%d lines, want 400", n)
	}
	off := l.Len()
	l.Write([]byte("after\n"))
	if s := l.Since(off); s != "after\n" {
		t.Errorf("Since(%d) = %q", off, s)
	}
	if s := l.Since(l.Len() + 10); s != "" {
		t.Errorf("Since past the end = %q", s)
	}
}

// needMTA skips when the sandbox's binary does not serve the delivery daemons.
func needMTA(t *testing.T, h *Home) {
	t.Helper()
	out, err := h.Command("notqmail", "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"qmail-start", "qmail-send", "qmail-lspawn", "qmail-clean", "qmail-local"} {
		if !strings.Contains(" "+strings.Join(strings.Fields(string(out)), " ")+" ", " "+d+" ") {
			t.Skipf("the sandbox's notqmail does not serve %s", d)
		}
	}
}

func TestMTADeliversAndStops(t *testing.T) {
	h := New(t, Options{})
	needMTA(t, h)
	log := &Log{}
	log.Write([]byte("before\n"))
	m := h.StartMTA(t, MTAOptions{Log: log})
	m.WaitLog("status: local")
	if m.Log() != log || strings.HasPrefix(m.Output(), "before") || !strings.HasPrefix(log.String(), "before\n") {
		t.Errorf("Output %q of log %q", m.Output(), log.String())
	}
	kids := m.Children()
	if pid := m.SendPID(); pid == 0 || kids["qmail-send"] != pid || kids["qmail-lspawn"] == 0 {
		t.Errorf("SendPID %d, children %v", pid, kids)
	}
	if !h.QueueEmpty() {
		t.Error("QueueEmpty false before any message")
	}
	if err := h.Submit(strings.NewReader("Subject: mta\n\nhi\n"), "x@far.example", []string{"alice@" + h.Domain}); err != nil {
		t.Fatal(err)
	}
	h.WaitMessages(t, "alice", 1)
	m.WaitFor("the queue to empty", h.QueueEmpty)
	m.Alarm()
	m.WaitFor("the end of the delivery", func() bool { return strings.Contains(m.Output(), "end msg ") })
	m.Running()
	if err := m.Stop(); err != nil {
		t.Errorf("Stop: %v\n%s", err, m.Output())
	}
	if exited, err := m.Exited(); !exited || err != nil {
		t.Errorf("Exited() = %v, %v", exited, err)
	}
	if !strings.HasSuffix(m.Output(), "status: exiting\n") {
		t.Errorf("no clean exit:\n%s", m.Output())
	}
	if err := m.Signal(syscall.SIGALRM); err == nil {
		t.Error("Signal to an exited MTA succeeded")
	}
}

func TestMTAKillTakesTheGroup(t *testing.T) {
	h := New(t, Options{})
	needMTA(t, h)
	// A remote message, which the missing qmail-remote holds in the queue.
	if err := h.Submit(strings.NewReader("Subject: held\n\nhi\n"), "alice@"+h.Domain, []string{"bob@far.example"}); err != nil {
		t.Fatal(err)
	}
	if h.QueueEmpty() {
		t.Error("QueueEmpty with a message in todo/")
	}
	m := h.StartMTA(t, MTAOptions{Env: []string{"QMAILREMOTE=/nonexistent"}, Guard: time.Minute})
	m.WaitLog("deferral: ")
	if h.QueueEmpty() {
		t.Error("QueueEmpty with a deferred message")
	}
	kids := m.Children()
	m.Kill()
	if exited, err := m.Exited(); !exited || err == nil {
		t.Errorf("after Kill: Exited() = %v, %v", exited, err)
	}
	// Every daemon went with it: none is left as a child of init.
	deadline := time.Now().Add(10 * time.Second)
	for name, pid := range kids {
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("%s (%d) outlived Kill", name, pid)
		}
	}
}
