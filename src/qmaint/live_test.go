package qmaint_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/qmaint"
	"github.com/notqmail/notqmail/src/queueclient"
	"github.com/notqmail/notqmail/src/sandbox"
)

// supervisor restarts qmail-start whenever it exits, as svscan or systemd would.
type supervisor struct {
	h    *sandbox.Home
	mu   sync.Mutex
	log  bytes.Buffer
	cmd  *exec.Cmd
	quit chan struct{}
	done chan struct{}
}

func (s *supervisor) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Write(p)
}

func (s *supervisor) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func supervise(t *testing.T, h *sandbox.Home) *supervisor {
	s := &supervisor{h: h, quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			cmd := h.Command("qmail-start", "./Maildir/")
			cmd.Stdout, cmd.Stderr = s, s
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Error(err)
				return
			}
			s.mu.Lock()
			s.cmd = cmd
			s.mu.Unlock()
			cmd.Wait()
			select {
			case <-s.quit:
				return
			case <-time.After(100 * time.Millisecond): // supervise's pause between restarts
			}
		}
	}()
	t.Cleanup(func() {
		close(s.quit)
		s.mu.Lock()
		if s.cmd != nil && s.cmd.Process != nil {
			s.cmd.Process.Signal(syscall.SIGTERM)
		}
		s.mu.Unlock()
		<-s.done
	})
	return s
}

// submitRetrying queues msg, trying again after a temporary failure as an SMTP client
// does after a 451. The test restarts qmail-start while mail arrives, and a message
// sent on a kept qmail-queued connection as that qmail-queued stops is refused
// (qmail-queued(8)): not queued, so sending it again is no duplicate.
func submitRetrying(h *sandbox.Home, msg, from, to string) error {
	var err error
	for try := 0; try < 5; try++ {
		if err = h.Submit(strings.NewReader(msg), from, []string{to}); err == nil || queueclient.IsPermanent(err) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func writeOwned(t *testing.T, h *sandbox.Home, p, s string) {
	t.Helper()
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0644); err != nil {
		t.Fatal(err)
	}
	os.Chown(tmp, h.UID, h.GID)
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

func qmaintCmd(t *testing.T, h *sandbox.Home, args ...string) (string, int) {
	t.Helper()
	cmd := h.Command("qmail-qmaint", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String() + errb.String(), code
}

// waitFor polls cond; the bound only turns a hang into a failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func subjectOf(t *testing.T, m *qmaint.Manager, id uint64) string {
	t.Helper()
	var b bytes.Buffer
	msg, err := m.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WriteMessage(&b, msg); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if s, ok := strings.CutPrefix(line, "Subject: "); ok {
			return s
		}
	}
	t.Fatalf("message %d has no subject:\n%s", id, b.String())
	return ""
}

func maildirHas(t *testing.T, h *sandbox.Home, user, subject string) bool {
	msgs, err := h.Messages(user)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if bytes.Contains(m.Data, []byte("\nSubject: "+subject+"\n")) {
			return true
		}
	}
	return false
}

func TestLiveQueue(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{Users: []string{"alice", "bob"}})
	bobQmail := filepath.Join(h.UserHome("bob"), ".qmail")
	writeOwned(t, h, bobQmail, "|exit 111\n") // bob's mail is deferred for now
	sup := supervise(t, h)
	m := &qmaint.Manager{Q: h.Queue()}
	waitFor(t, "qmail-send", func() bool { pid, _ := m.SendPID(); return pid > 0 })

	// Mail keeps arriving for the whole test: to alice (delivered) and to bob.
	alice := "alice@" + h.Domain
	bob := "bob@" + h.Domain
	var sent struct {
		sync.Mutex
		alice, bob int
	}
	stopArrivals := make(chan struct{})
	arrivalsDone := make(chan struct{})
	go func() {
		defer close(arrivalsDone)
		for i := 0; i < 400; i++ {
			select {
			case <-stopArrivals:
				return
			default:
			}
			to := alice
			if i%2 == 1 {
				to = bob
			}
			msg := fmt.Sprintf("From: %s\nTo: %s\nSubject: live-%d\n\nbody %d\n", alice, to, i, i)
			if err := submitRetrying(h, msg, alice, to); err != nil {
				t.Errorf("submit %d: %v", i, err)
				return
			}
			sent.Lock()
			if to == alice {
				sent.alice++
			} else {
				sent.bob++
			}
			sent.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			close(stopArrivals)
			<-arrivalsDone
		}
	}
	defer stop()

	// Wait for deferred messages to bob.
	var deferred []uint64
	waitFor(t, "deferred messages", func() bool {
		out, code := qmaintCmd(t, h, "-j", "-t", "queued", "-r", "bob@", "list")
		var msgs []qmaint.Message
		if code != 0 || json.Unmarshal([]byte(out), &msgs) != nil {
			t.Fatalf("list: %d %s", code, out)
		}
		deferred = deferred[:0]
		for _, msg := range msgs {
			if msg.Pending() == 1 && msg.Recipients[0].Channel == "local" {
				deferred = append(deferred, msg.ID)
			}
		}
		return len(deferred) >= 4
	})
	del, held, expired, requeued := deferred[0], deferred[1], deferred[2], deferred[3]
	delSubj, heldSubj, expSubj := subjectOf(t, m, del), subjectOf(t, m, held), subjectOf(t, m, expired)

	out, code := qmaintCmd(t, h, "-j", "-b", "recipient", "count")
	var counts map[string]int
	if code != 0 || json.Unmarshal([]byte(out), &counts) != nil || counts[bob] < 4 {
		t.Fatalf("count by recipient: %d %s", code, out)
	}
	out, code = qmaintCmd(t, h, "show", fmt.Sprint(del))
	for _, want := range []string{"Sender: <" + alice + ">", "Recipient: <" + bob + "> local pending", "Subject: " + delSubj, "Received: (qmail "} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("show lacks %q (exit %d):\n%s", want, code, out)
		}
	}
	out, code = qmaintCmd(t, h, "list")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("%d", del)) || !strings.Contains(out, "local  pending <"+bob+">") {
		t.Errorf("table (exit %d):\n%s", code, out)
	}

	// Changes refuse while qmail-send runs, unless told to stop it.
	if out, code = qmaintCmd(t, h, "delete", fmt.Sprint(del)); code != 111 || !strings.Contains(out, "qmail-send is running (pid ") {
		t.Fatalf("delete with qmail-send running: exit %d\n%s", code, out)
	}
	if _, err := m.Get(del); err != nil {
		t.Fatalf("refused delete touched the message: %v", err)
	}
	// requeue with qmail-send running falls back to ALRM.
	if out, code = qmaintCmd(t, h, "requeue", fmt.Sprint(requeued)); code != 0 || !strings.Contains(out, "SIGALRM") {
		t.Errorf("requeue: %d %s", code, out)
	}

	for _, step := range []struct {
		cmd string
		id  uint64
	}{{"delete", del}, {"expire", expired}, {"hold", held}} {
		pid, _ := m.SendPID()
		out, code := qmaintCmd(t, h, "-S", step.cmd, fmt.Sprint(step.id))
		if code != 0 || !strings.Contains(out, fmt.Sprint(step.id)) {
			t.Fatalf("%s %d: exit %d\n%s\n%s", step.cmd, step.id, code, out, sup.Log())
		}
		waitFor(t, "qmail-send's restart", func() bool { p, _ := m.SendPID(); return p > 0 && p != pid })
	}
	// The id is the mess file's inode, which a new message may get again at once.
	if _, err := m.Get(del); err == nil && subjectOf(t, m, del) == delSubj {
		t.Errorf("deleted message %d is still queued", del)
	}
	if msg, err := m.Get(held); err != nil || msg.State != qmaint.StateHeld {
		t.Fatalf("held message: %+v %v", msg, err)
	}
	// The expired message bounces to alice at once.
	waitFor(t, "the expiry bounce", func() bool {
		msgs, _ := h.Messages("alice")
		for _, mm := range msgs {
			if bytes.Contains(mm.Data, []byte("removed from the queue by its administrator")) &&
				bytes.Contains(mm.Data, []byte("Subject: "+expSubj+"\n")) {
				return true
			}
		}
		return false
	})

	// bob can take mail now: everything queued for him goes, except the held message.
	writeOwned(t, h, bobQmail, "./Maildir/\n")
	if out, code = qmaintCmd(t, h, "-S", "-t", "queued", "-r", "bob@", "requeue"); code != 0 {
		t.Fatalf("requeue: exit %d\n%s", code, out)
	}
	waitFor(t, "bob's queued mail", func() bool {
		msgs, err := m.List()
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range msgs {
			if msg.State != qmaint.StateHeld && msg.Pending() > 0 && msg.Recipients[0].Addr == bob {
				return false
			}
		}
		return true
	})
	if maildirHas(t, h, "bob", heldSubj) {
		t.Fatal("a held message was delivered")
	}
	if out, code = qmaintCmd(t, h, "-S", "release", fmt.Sprint(held)); code != 0 {
		t.Fatalf("release: exit %d\n%s", code, out)
	}
	waitFor(t, "the released message", func() bool { return maildirHas(t, h, "bob", heldSubj) })

	// Every accepted message arrives, except the deleted and the expired one.
	stop()
	sent.Lock()
	wantAlice, wantBob := sent.alice+1, sent.bob-2
	sent.Unlock()
	h.WaitMessages(t, "alice", wantAlice)
	h.WaitMessages(t, "bob", wantBob)
	waitFor(t, "an empty queue", func() bool { msgs, err := m.List(); return err == nil && len(msgs) == 0 })
	for user, n := range map[string]int{"alice": wantAlice, "bob": wantBob} {
		if msgs, _ := h.Messages(user); len(msgs) != n {
			t.Errorf("%s has %d messages, want %d", user, len(msgs), n)
		}
	}
	if maildirHas(t, h, "bob", delSubj) || maildirHas(t, h, "bob", expSubj) {
		t.Error("a deleted or expired message was delivered")
	}
	if out, code := h.Command("qmail-qfix").CombinedOutput(); code != nil {
		t.Errorf("qmail-qfix after all that: %v\n%s", code, out)
	}
}
