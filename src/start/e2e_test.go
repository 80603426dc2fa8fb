package start_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/start"
)

// startMTA runs "qmail-start ./Maildir/" in the home with env added, logging to log
// (one log for several runs); it stops when the test ends.
func startMTA(t *testing.T, h *sandbox.Home, log *sandbox.Log, env ...string) *sandbox.MTA {
	t.Helper()
	return h.StartMTA(t, sandbox.MTAOptions{Env: env, Log: log, Guard: time.Minute})
}

func newHome(t *testing.T, users ...string) *sandbox.Home {
	t.Helper()
	h := sandbox.New(t, sandbox.Options{Users: users})
	return h
}

// writeOwned writes a file in the home as its owner would.
func writeOwned(t *testing.T, h *sandbox.Home, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(path, h.UID, h.GID); err != nil {
			t.Fatal(err)
		}
	}
}

func submit(t *testing.T, h *sandbox.Home, from, to, subject string) {
	t.Helper()
	msg := "From: " + from + "\nTo: " + to + "\nSubject: " + subject + "\n\nbody of " + subject + "\n"
	if err := h.Submit(strings.NewReader(msg), from, []string{to}); err != nil {
		t.Fatalf("queueing %s: %v", subject, err)
	}
}

// waitQueueEmpty waits until qmail-send has finished every message: nothing left in
// todo/ or info/. (A crash between removing info/ and qmail-clean's work leaves a mess/
// file that the 36-hour cleanup removes, as in qmail.)
func waitQueueEmpty(t *testing.T, h *sandbox.Home, log *sandbox.Log) {
	t.Helper()
	q := h.Queue()
	for i := 0; i < 3000; i++ {
		n := 0
		for _, sub := range []string{"info"} {
			for s := 0; s < q.Split; s++ {
				ents, _ := os.ReadDir(filepath.Join(q.Dir, sub, strconv.Itoa(s)))
				n += len(ents)
			}
		}
		ents, _ := os.ReadDir(filepath.Join(q.Dir, "todo"))
		n += len(ents)
		if n == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, _ := exec.Command("find", q.Dir, "-type", "f").Output()
	t.Fatalf("queue not empty:\n%s\nlog:\n%s", out, log.String())
}

func TestEndToEndDelivery(t *testing.T) {
	h := newHome(t, "alice")
	log := &sandbox.Log{}
	m := startMTA(t, h, log)
	submit(t, h, "someone@far.example", "alice@"+h.Domain, "first")
	msgs := h.WaitMessages(t, "alice", 1)
	if !bytes.Contains(msgs[0].Data, []byte("Subject: first\n")) ||
		!bytes.Contains(msgs[0].Data, []byte("Delivered-To: alice@"+h.Domain+"\n")) {
		t.Errorf("delivered message:\n%s", msgs[0].Data)
	}
	waitQueueEmpty(t, h, log)
	l := log.String()
	for _, want := range []string{"status: local 0/10 remote 0/20\n", "new msg ", "info msg ",
		"from <someone@far.example> qp ", "to local alice@" + h.Domain + "\n", ": success: ", "end msg "} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
	m.Stop()
	if !strings.HasSuffix(log.String(), "status: exiting\n") {
		t.Errorf("no clean exit:\n%s", log.String())
	}
}

func TestRetryThenBounceThenDoubleBounce(t *testing.T) {
	h := newHome(t, "alice", "bob")
	// bob's deliveries fail temporarily; the queue lifetime is short so the final try
	// comes after a few forced retries.
	writeOwned(t, h, filepath.Join(h.UserHome("bob"), ".qmail"), "|exit 111\n", 0644)
	writeOwned(t, h, filepath.Join(h.Dir, "control", "queuelifetime"), "2\n", 0644)
	log := &sandbox.Log{}
	m := startMTA(t, h, log)
	m.WaitLog("status: local")

	submit(t, h, "alice@"+h.Domain, "bob@"+h.Domain, "to-bob")
	// A bounce whose sender does not exist either: it bounces, and the double bounce
	// goes to the postmaster (the alias user's Maildir in the sandbox).
	submit(t, h, "ghost1@"+h.Domain, "ghost2@"+h.Domain, "ghostly")

	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
				m.Signal(syscall.SIGALRM) // qmail-start passes it on to qmail-send
			}
		}
	}()
	bounces := h.WaitMessages(t, "alice", 1)
	b := string(bounces[0].Data)
	for _, want := range []string{
		"From: MAILER-DAEMON@" + h.Domain + "\n",
		"Subject: failure notice\n",
		"Hi. This is the qmail-send program at " + h.Domain + ".\n",
		"<bob@" + h.Domain + ">:\n",
		"I'm not going to try again; this message has been in the queue too long.\n",
		"--- Below this line is a copy of the message.\n\nReturn-Path: <alice@" + h.Domain + ">\n",
		"Subject: to-bob\n",
	} {
		if !strings.Contains(b, want) {
			t.Errorf("bounce lacks %q:\n%s", want, b)
		}
	}
	if n := strings.Count(log.String(), "to local bob@"+h.Domain+"\n"); n < 2 {
		t.Errorf("bob's delivery was tried %d times; want retries", n)
	}
	if !strings.Contains(log.String(), ": deferral: ") {
		t.Errorf("no deferral logged:\n%s", log.String())
	}

	dbl := h.WaitMessages(t, "alias", 1)
	d := string(dbl[0].Data)
	for _, want := range []string{
		"I tried to deliver a bounce message to this address, but the bounce bounced!\n",
		"<ghost1@" + h.Domain + ">:\n",
		"--- Below this line is the original bounce.\n\nReturn-Path: <>\n",
		"<ghost2@" + h.Domain + ">:\n",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("double bounce lacks %q:\n%s", want, d)
		}
	}
	waitQueueEmpty(t, h, log)
}

// Crash safety (SIGKILL to qmail-queue and qmail-send, hundreds of rounds) is
// e2e.TestCrashSafetyQueueAndSend.

// TestPicksUpQmailQueue builds queue entries by hand the way qmail's qmail-queue and
// qmail-send leave them (inode-number ids, qmail's modes and records) and checks that
// they are delivered.
func TestPicksUpQmailQueue(t *testing.T) {
	h := newHome(t, "alice")
	q := h.Queue()
	own := func(p string, mode os.FileMode) {
		os.Chmod(p, mode)
		if os.Geteuid() == 0 {
			os.Chown(p, h.UID, h.GID)
		}
	}
	newID := func(body string) uint64 {
		pid := filepath.Join(q.Dir, "pid", fmt.Sprintf("%d.%d.1", os.Getpid(), time.Now().UnixNano()))
		if err := os.WriteFile(pid, []byte(body), 0644); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(pid)
		id := fi.Sys().(*syscall.Stat_t).Ino
		if err := os.Link(pid, q.Path("mess", id)); err != nil {
			t.Fatal(err)
		}
		os.Remove(pid)
		own(q.Path("mess", id), 0644)
		return id
	}
	// State after qmail-queue: mess, intd and its link todo.
	a := newID("Received: (qmail 1 invoked by uid 0); 1 Jan 2026 00:00:00 -0000\nSubject: from-todo\n\nhi\n")
	env := "u0\x00p1\x00Fsender@far.example\x00Talice@" + h.Domain + "\x00"
	os.WriteFile(q.Path("intd", a), []byte(env), 0644)
	own(q.Path("intd", a), 0644)
	os.Link(q.Path("intd", a), q.Path("todo", a))
	// State after qmail-send's preprocessing and one delivery: info, local with D and T.
	b := newID("Subject: from-info\n\nhi\n")
	os.WriteFile(q.Path("info", b), []byte("Fsender@far.example\x00"), 0600)
	own(q.Path("info", b), 0600)
	os.WriteFile(q.Path("local", b), []byte("Dnobody-done@"+h.Domain+"\x00Talice@"+h.Domain+"\x00"), 0600)
	own(q.Path("local", b), 0600)

	log := &sandbox.Log{}
	startMTA(t, h, log)
	msgs := h.WaitMessages(t, "alice", 2)
	waitQueueEmpty(t, h, log)
	var subjects []string
	for _, msg := range msgs {
		for _, line := range strings.Split(string(msg.Data), "\n") {
			if strings.HasPrefix(line, "Subject: ") {
				subjects = append(subjects, line)
			}
		}
	}
	if len(subjects) != 2 || !strings.Contains(strings.Join(subjects, ","), "from-todo") || !strings.Contains(strings.Join(subjects, ","), "from-info") {
		t.Errorf("subjects %q", subjects)
	}
	if strings.Contains(log.String(), "nobody-done") {
		t.Errorf("a done recipient was delivered:\n%s", log.String())
	}
}

// TestRemoteThroughQMAILREMOTE delivers a remote recipient through the QMAILREMOTE
// seam, and checks that a missing remote program only defers.
func TestRemoteThroughQMAILREMOTE(t *testing.T) {
	h := newHome(t, "alice")
	script := filepath.Join(h.Dir, "fake-remote")
	out := filepath.Join(h.Dir, "remote-out")
	os.Mkdir(out, 0755)
	if os.Geteuid() == 0 {
		os.Chown(out, h.UID, h.GID)
	}
	os.WriteFile(script, []byte("#!/bin/sh\ncat > "+out+"/\"$3\"\nprintf 'r\\000Kfake remote took it for %s from %s\\000' \"$1\" \"$2\"\n"), 0755)

	log := &sandbox.Log{}
	m := startMTA(t, h, log, "QMAILREMOTE=/nonexistent/qmail-remote")
	submit(t, h, "alice@"+h.Domain, "bob@far.example", "remote-1")
	for i := 0; i < 3000 && !strings.Contains(log.String(), ": deferral: Unable_to_run_qmail-remote./"); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(log.String(), ": deferral: Unable_to_run_qmail-remote./") {
		t.Fatalf("no deferral for a missing qmail-remote:\n%s", log.String())
	}
	// The waiting message, as qmail-qread and qmail-qstat see it.
	qr, err := h.Command("qmail-qread").Output()
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(string(qr), "\n"); len(lines) != 3 ||
		!strings.Contains(lines[0], " GMT  #") || !strings.HasSuffix(lines[0], "  <alice@"+h.Domain+"> ") ||
		lines[1] != "\tremote\tbob@far.example" {
		t.Errorf("qmail-qread:\n%s", qr)
	}
	qs, err := h.Command("qmail-qstat").Output()
	if err != nil || string(qs) != "messages in queue: 1\nmessages in queue but not yet preprocessed: 0\n" {
		t.Errorf("qmail-qstat: %q %v", qs, err)
	}
	m.Stop()

	m = startMTA(t, h, log, "QMAILREMOTE="+script)
	m.WaitLog("status: local")
	m.Signal(syscall.SIGALRM)
	waitQueueEmpty(t, h, log)
	b, err := os.ReadFile(filepath.Join(out, "bob@far.example"))
	if err != nil || !strings.Contains(string(b), "Subject: remote-1\n") {
		t.Fatalf("remote program got %q, %v", b, err)
	}
	if !strings.Contains(log.String(), ": success: fake_remote_took_it_for_far.example_from_alice@"+h.Domain+"\n") {
		t.Errorf("log:\n%s", log.String())
	}
}

// TestLoggerArgument runs qmail-send's log through a logger command, as
// "qmail-start ./Maildir/ splogger qmail" does.
func TestLoggerArgument(t *testing.T) {
	h := newHome(t, "alice")
	log := &sandbox.Log{}
	m := h.StartMTA(t, sandbox.MTAOptions{Args: []string{"./Maildir/", "sed", "-u", "s/^/LOGGED: /"}, Log: log, Guard: time.Minute})
	submit(t, h, "x@far.example", "alice@"+h.Domain, "logged")
	h.WaitMessages(t, "alice", 1)
	waitQueueEmpty(t, h, log)
	m.Stop()
	l := log.String()
	if !strings.Contains(l, "LOGGED: status: local 0/10 remote 0/20\n") || !strings.Contains(l, "LOGGED: end msg ") ||
		!strings.HasSuffix(l, "LOGGED: status: exiting\n") {
		t.Errorf("log:\n%s", l)
	}
}

// TestDefaultDeliveryFromControlFile: without arguments qmail-start takes the whole of
// control/defaultdelivery, as qmail's rc passes "$(cat control/defaultdelivery)", so a
// comment before the delivery line does not turn every delivery into a discard.
func TestDefaultDeliveryFromControlFile(t *testing.T) {
	h := newHome(t, "alice")
	os.Remove(filepath.Join(h.UserHome("alice"), ".qmail"))
	writeOwned(t, h, filepath.Join(h.Dir, "control", "defaultdelivery"), "# site default: the Maildir\n./Maildir/\n", 0644)
	log := &sandbox.Log{}
	h.StartMTA(t, sandbox.MTAOptions{Args: []string{}, Log: log, Guard: time.Minute})
	submit(t, h, "someone@far.example", "alice@"+h.Domain, "via-control")
	msgs := h.WaitMessages(t, "alice", 1)
	if !bytes.Contains(msgs[0].Data, []byte("Subject: via-control\n")) {
		t.Errorf("delivered message:\n%s", msgs[0].Data)
	}
}

func TestParseArgs(t *testing.T) {
	dir := t.TempDir()
	ctl := control.Open(dir)
	if o, err := start.ParseArgs(nil, ctl); err != nil || o.DefaultDelivery != start.DefaultDelivery {
		t.Errorf("no file: %+v, %v", o, err)
	}
	os.WriteFile(filepath.Join(dir, "defaultdelivery"), []byte("# comment\n./Maildir/\n|preline procmail\n\n"), 0644)
	o, err := start.ParseArgs(nil, ctl)
	if err != nil || o.DefaultDelivery != "# comment\n./Maildir/\n|preline procmail" {
		t.Errorf("file: %+v, %v", o, err)
	}
	o, err = start.ParseArgs([]string{"./Mailbox", "splogger", "qmail"}, ctl)
	if err != nil || o.DefaultDelivery != "./Mailbox" || strings.Join(o.Logger, " ") != "splogger qmail" {
		t.Errorf("args: %+v, %v", o, err)
	}
}
