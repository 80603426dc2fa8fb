package durability

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/sandbox"
)

// queuedID returns the id of the message that the trace linked into todo/, with the
// link event; it fails the test when there is none.
func queuedID(t *testing.T, tr *traced, qdir string) (uint64, *Event) {
	t.Helper()
	link := linkInto(tr.events, qdir, filepath.Join(qdir, "todo"))
	if link == nil {
		t.Fatalf("no link into %s/todo in the trace:\n%s", qdir, tr.dump())
	}
	id, err := strconv.ParseUint(filepath.Base(link.Paths(qdir)[1]), 10, 64)
	if err != nil {
		t.Fatalf("todo entry %s is not a number", link.Paths(qdir)[1])
	}
	return id, link
}

// checkEnqueueOrder asserts qmail-queue's durability order in a trace of one message
// queued at the link event todo: the mess/ file is fsynced after its last write and
// before the link, and so is its directory; intd/ likewise; the todo/ directory is
// fsynced after the link and before the success (before), the exit or the reply.
func checkEnqueueOrder(t *testing.T, tr *traced, q queue.Queue, id uint64, todo *Event, before int) {
	t.Helper()
	ev := tr.events
	mess, intd := q.Path("mess", id), q.Path("intd", id)
	if got := todo.Paths(q.Dir)[0]; got != intd {
		t.Errorf("todo/%d was linked from %s, not from %s", id, got, intd)
	}
	syncedBetween(t, ev, q.Dir, mess, todo.Seq, "mess")
	dirSyncedBetween(t, ev, filepath.Dir(mess), -1, todo.Seq, "mess/ entry")
	syncedBetween(t, ev, q.Dir, intd, todo.Seq, "intd")
	dirSyncedBetween(t, ev, filepath.Join(q.Dir, "todo"), todo.Seq, before, "todo/ entry")
	if t.Failed() {
		t.Logf("trace:\n%s", tr.dump())
	}
}

// TestQueueFsyncsBeforeSuccess traces bin/qmail-queue queueing one message and checks
// that every file and directory entry it makes is on disk before it exits 0.
func TestQueueFsyncsBeforeSuccess(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	q := h.Queue()
	q.Dir = realDir(t, q.Dir)
	tr := &traced{t: t, file: filepath.Join(t.TempDir(), "trace")}
	body := "Subject: durability\n\n" + strings.Repeat("a line of the body, long enough to take several writes\n", 3000)
	code, stderr := runQueue(t, h, tr.file, nil, body, envelope("bob@far.example", "alice@"+h.Domain))
	if code != 0 {
		t.Fatalf("qmail-queue exited %d: %s", code, stderr)
	}
	tr.load()
	id, link := queuedID(t, tr, q.Dir)
	exit := exitOf(tr.events, 0)
	if exit == nil || exit.Seq < link.Seq {
		t.Fatalf("no exit_group(0) after the link into todo/:\n%s", tr.dump())
	}
	checkEnqueueOrder(t, tr, q, id, link, exit.Seq)
	// Nothing synced is undone: the message is complete where the trace says.
	b, err := os.ReadFile(q.Path("mess", id))
	if err != nil || !strings.HasSuffix(string(b), body) {
		t.Errorf("mess/%d does not hold the message (%d bytes, %v)", id, len(b), err)
	}
}
