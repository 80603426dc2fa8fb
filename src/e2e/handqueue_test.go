package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/notqmail/notqmail/src/sandbox"
)

// handQueue writes messages into a queue the way qmail's programs leave them, without
// any of this project's code (reference §2.2 and §2.3).
type handQueue struct {
	t     *testing.T
	h     *sandbox.Home
	dir   string
	split int
}

func (q handQueue) path(sub string, id uint64) string {
	switch sub {
	case "mess", "info", "local", "remote":
		return filepath.Join(q.dir, sub, fmt.Sprint(id%uint64(q.split)), fmt.Sprint(id))
	}
	return filepath.Join(q.dir, sub, fmt.Sprint(id))
}

// write creates a file with mode, owned by the sandbox's user (qmailq and qmails are
// both that user in a sandbox).
func (q handQueue) write(p string, data string, mode os.FileMode) {
	q.t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		q.t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		q.t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		q.t.Fatal(err)
	}
	f.Close()
	if err := os.Chmod(p, mode); err != nil {
		q.t.Fatal(err)
	}
	if err := os.Chown(p, q.h.UID, q.h.GID); err != nil {
		q.t.Fatal(err)
	}
}

// mess does qmail-queue's first steps: create pid/<pid>.<time>.1, take its inode
// number as the message id, link it to mess/<id%split>/<id>, drop the pid name, and
// write the Received line and the message. Mode 0644: qmail-queue's umask is 033.
func (q handQueue) mess(pid int, msg string) uint64 {
	q.t.Helper()
	pidPath := filepath.Join(q.dir, "pid", fmt.Sprintf("%d.1763769600.1", pid))
	q.write(pidPath, "", 0644)
	fi, err := os.Stat(pidPath)
	if err != nil {
		q.t.Fatal(err)
	}
	id := fi.Sys().(*syscall.Stat_t).Ino
	if err := os.Link(pidPath, q.path("mess", id)); err != nil {
		q.t.Fatal(err)
	}
	if err := os.Remove(pidPath); err != nil {
		q.t.Fatal(err)
	}
	f, err := os.OpenFile(q.path("mess", id), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		q.t.Fatal(err)
	}
	fmt.Fprintf(f, "Received: (qmail %d invoked by uid %d); 21 Nov 2025 00:00:00 -0000\n%s", pid, q.h.UID, msg)
	f.Sync()
	f.Close()
	return id
}

// envelope is qmail-queue's intd/todo format: u, p, F, then T records, each ending
// in NUL.
func envelope(uid, pid int, sender string, rcpts ...string) string {
	e := fmt.Sprintf("u%d\x00p%d\x00F%s\x00", uid, pid, sender)
	for _, r := range rcpts {
		e += "T" + r + "\x00"
	}
	return e
}

// TestHandWrittenQueue builds a queue as qmail leaves it after a stop: a message
// fully queued (todo/), one whose qmail-queue died before committing it (intd/ only),
// and one qmail-send had preprocessed and half delivered (info/ and local/, one
// recipient marked D). qmail-send must deliver the first to both recipients, the
// third to the recipient not yet done, and leave the uncommitted one alone.
func TestHandWrittenQueue(t *testing.T) {
	t.Parallel() // independent sandboxes; overlap the retry test's waiting
	h := sandbox.New(t, sandbox.Options{Domain: domain, Users: []string{"alice", "bob"}})
	needDaemons(t, h)
	hq := handQueue{t: t, h: h, dir: filepath.Join(h.Dir, "queue"), split: h.Queue().Split}
	uid := h.UID

	// 1: queued: mess, intd, and todo linked to intd.
	queued := hq.mess(1001, "From: x@example.org\nSubject: hand queued\n\nwritten by hand\n")
	hq.write(hq.path("intd", queued), envelope(uid, 1001, "x@example.org", "alice@"+domain, "bob@"+domain), 0644)
	if err := os.Link(hq.path("intd", queued), hq.path("todo", queued)); err != nil {
		t.Fatal(err)
	}

	// 2: not accepted: qmail-queue stopped before linking todo/.
	uncommitted := hq.mess(1002, "Subject: never accepted\n\nmust not arrive\n")
	hq.write(hq.path("intd", uncommitted), envelope(uid, 1002, "x@example.org", "alice@"+domain), 0644)

	// 3: preprocessed by qmail-send (modes 0600: its umask is 077), alice done.
	half := hq.mess(1003, "Subject: half delivered\n\nonly bob is left\n")
	hq.write(hq.path("info", half), "Fy@example.org\x00", 0600)
	hq.write(hq.path("local", half), "Dalice@"+domain+"\x00Tbob@"+domain+"\x00", 0600)

	m := startMTA(t, h)
	m.WaitFor("two messages for bob", func() bool { return countFiles(h.Maildir("bob")) >= 2 })
	m.WaitFor("one message for alice", func() bool { return countFiles(h.Maildir("alice")) >= 1 })
	m.WaitFor("the accepted messages to leave the queue", func() bool {
		_, e1 := os.Stat(hq.path("mess", queued))
		_, e3 := os.Stat(hq.path("mess", half))
		return os.IsNotExist(e1) && os.IsNotExist(e3)
	})
	stop(t, m)

	alice := maildirFiles(t, h.Maildir("alice"))
	if len(alice) != 1 || !strings.Contains(alice[0], "Subject: hand queued\n") {
		t.Errorf("alice got %d messages, want just the queued one: %q", len(alice), alice)
	} else if !strings.HasPrefix(alice[0], "Return-Path: <x@example.org>\nDelivered-To: alice@"+domain+"\nReceived: (qmail 1001 invoked by uid ") ||
		!strings.HasSuffix(alice[0], "\n\nwritten by hand\n") {
		t.Errorf("alice's message:\n%s", alice[0])
	}
	bob := strings.Join(maildirFiles(t, h.Maildir("bob")), "\n---\n")
	if strings.Count(bob, "Subject: hand queued\n") != 1 || strings.Count(bob, "Subject: half delivered\n") != 1 ||
		!strings.Contains(bob, "Return-Path: <y@example.org>\nDelivered-To: bob@"+domain+"\n") {
		t.Errorf("bob's messages:\n%s", bob)
	}
	if strings.Contains(bob+strings.Join(alice, ""), "never accepted") {
		t.Errorf("a message qmail-queue never committed was delivered")
	}
	for _, p := range []string{hq.path("mess", uncommitted), hq.path("intd", uncommitted)} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the uncommitted message's %s is gone (qmail keeps it until it is 36 hours old): %v", p, err)
		}
	}
	for _, id := range []uint64{queued, half} {
		for _, sub := range []string{"todo", "intd", "info", "local"} {
			if _, err := os.Stat(hq.path(sub, id)); !os.IsNotExist(err) {
				t.Errorf("%s of a delivered message is still there", hq.path(sub, id))
			}
		}
	}
}
