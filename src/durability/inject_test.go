package durability

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/sandbox"
)

// injectFsync is strace's option making the nth fsync of each traced thread fail with
// EIO, for real: the kernel never runs it and the program sees the error.
func injectFsync(n int) []string {
	return []string{"-e", fmt.Sprintf("inject=fsync:error=EIO:when=%d", n)}
}

// injected returns the fsync whose failure strace injected, or nil.
func injected(ev []Event) *Event {
	return find(ev, 0, func(e Event) bool { return IsSync(e) && e.Injected })
}

// queueSyncKind names what a qmail-queue fsync flushes: "mess", "mess/ entry",
// "intd", "todo/ entry".
func queueSyncKind(ev []Event, q queue.Queue, e *Event) string {
	p := e.FDPath()
	switch {
	case p == filepath.Join(q.Dir, "todo"):
		return "todo/ entry"
	case filepath.Dir(p) == filepath.Join(q.Dir, "mess"):
		return "mess/ entry"
	case filepath.Dir(p) == filepath.Join(q.Dir, "intd"):
		return "intd"
	case filepath.Dir(p) == filepath.Join(q.Dir, "pid"):
		return "mess" // the message is written through the descriptor of its pid/ name
	}
	return p
}

// TestQueueFsyncFailure makes each of qmail-queue's fsyncs fail in turn and checks
// that it never reports success: it exits 53 ("qq write error or disk full"), and
// when the failing fsync comes before the link into todo/, nothing of the message is
// left in the queue. When only the final sync of todo/ fails, the message is already
// queued and stays (qmail-send will deliver it): the client, told of a temporary
// failure, may send it again, which is a duplicate, never a loss.
func TestQueueFsyncFailure(t *testing.T) {
	want := []string{"mess", "mess/ entry", "intd", "todo/ entry"}
	seen := map[string]bool{}
	for n := 1; n <= len(want); n++ {
		// strace counts calls per thread; a Go program may move to another thread
		// between two fsyncs, so the nth call of a thread is not always the nth of
		// the program. Retry until the intended one failed; every run is checked.
		for try := 0; try < 5 && !seen[want[n-1]]; try++ {
			kind := queueFailOnce(t, n)
			seen[kind] = true
		}
	}
	for _, k := range want {
		if !seen[k] {
			t.Errorf("no run failed the %s fsync; failed: %v", k, seen)
		}
	}
}

// queueFailOnce queues one message with the nth fsync failing, checks the outcome and
// returns which fsync failed.
func queueFailOnce(t *testing.T, n int) string {
	t.Helper()
	h := sandbox.New(t, sandbox.Options{})
	q := h.Queue()
	q.Dir = realDir(t, q.Dir)
	tr := &traced{t: t, file: filepath.Join(t.TempDir(), "trace")}
	code, stderr := runQueue(t, h, tr.file, injectFsync(n), "Subject: doomed\n\nbody\n", envelope("bob@far.example", "alice@"+h.Domain))
	ev := tr.load()
	inj := injected(ev)
	if inj == nil {
		// The calls were spread over threads so that none made n of them.
		if code != 0 {
			t.Fatalf("no fsync failed, yet qmail-queue exited %d: %s\n%s", code, stderr, tr.dump())
		}
		return ""
	}
	kind := queueSyncKind(ev, q, inj)
	if code != queue.ExitWrite {
		t.Errorf("%s fsync failed: qmail-queue exited %d, want %d: %s", kind, code, queue.ExitWrite, stderr)
	}
	if !strings.Contains(stderr, "syncing") {
		t.Errorf("%s fsync failed: stderr does not say so: %q", kind, stderr)
	}
	if exitOf(ev, 0) != nil {
		t.Errorf("%s fsync failed, yet qmail-queue called exit_group(0)", kind)
	}
	link := linkInto(ev, q.Dir, filepath.Join(q.Dir, "todo"))
	if kind == "todo/ entry" {
		if link == nil || link.Seq > inj.Seq {
			t.Errorf("the todo/ sync failed without a link into todo/ before it")
		}
		if ids, err := q.Todo(); err != nil || len(ids) != 1 {
			t.Errorf("after a failed todo/ sync, todo/ holds %v (%v); want the queued message", ids, err)
		}
		return kind
	}
	if link != nil {
		t.Errorf("%s fsync failed (#%d), yet the message was linked into todo/ (#%d)", kind, inj.Seq, link.Seq)
	}
	for _, sub := range []string{"todo", "intd", "mess", "pid", "info", "local", "remote"} {
		if left := files(t, filepath.Join(q.Dir, sub)); len(left) > 0 {
			t.Errorf("%s fsync failed; %s/ still holds %v", kind, sub, left)
		}
	}
	if t.Failed() {
		t.Logf("trace:\n%s", tr.dump())
	}
	return kind
}

// TestLocalMaildirFsyncFailure makes qmail-local's fsync of the tmp/ file, then of
// new/, fail, and checks that it reports a temporary failure (exit 111, which
// qmail-lspawn passes on as Z) and leaves no message in new/ (nor in tmp/).
func TestLocalMaildirFsyncFailure(t *testing.T) {
	want := []string{"tmp/ file", "new/ entry"}
	seen := map[string]bool{}
	for n := 1; n <= len(want); n++ {
		for try := 0; try < 5 && !seen[want[n-1]]; try++ {
			h := sandbox.New(t, sandbox.Options{})
			md := realDir(t, h.Maildir("alice"))
			tr := &traced{t: t, file: filepath.Join(t.TempDir(), "trace")}
			code, out := runLocal(t, h, tr.file, injectFsync(n), "./Maildir/")
			ev := tr.load()
			inj := injected(ev)
			if inj == nil { // spread over threads so that none made n calls
				if code != 0 {
					t.Fatalf("no fsync failed, yet qmail-local exited %d: %s", code, out)
				}
				continue
			}
			kind := inj.FDPath()
			switch {
			case filepath.Dir(kind) == filepath.Join(md, "tmp"):
				kind = "tmp/ file"
			case kind == filepath.Join(md, "new"):
				kind = "new/ entry"
			}
			seen[kind] = true
			if code != 111 {
				t.Errorf("%s fsync failed: qmail-local exited %d, want 111: %s", kind, code, out)
			}
			if strings.HasPrefix(out, "did ") || successWrite(ev) != nil || exitOf(ev, 0) != nil {
				t.Errorf("%s fsync failed, yet qmail-local reported success: %s", kind, out)
			}
			for _, sub := range []string{"new", "cur", "tmp"} {
				if left := files(t, filepath.Join(md, sub)); len(left) > 0 {
					t.Errorf("%s fsync failed; %s/ still holds %v", kind, sub, left)
				}
			}
			if t.Failed() {
				t.Fatalf("trace:\n%s", tr.dump())
			}
		}
	}
	for _, k := range want {
		if !seen[k] {
			t.Errorf("no run failed the %s fsync; failed: %v", k, seen)
		}
	}
}

// TestLocalMboxFsyncFailure makes qmail-local's fsync of an mbox fail and checks that
// it reports a temporary failure and takes the partial message back out of the mbox.
func TestLocalMboxFsyncFailure(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	mbox := filepath.Join(h.UserHome("alice"), "mbox")
	old := "From someone Thu Jan  1 00:00:00 2026\nSubject: old\n\nold mail\n\n"
	writeOwned(t, h, mbox, old)
	tr := &traced{t: t, file: filepath.Join(t.TempDir(), "trace")}
	code, out := runLocal(t, h, tr.file, injectFsync(1), "./mbox")
	ev := tr.load()
	inj := injected(ev)
	if inj == nil || inj.FDPath() != filepath.Join(realDir(t, h.UserHome("alice")), "mbox") {
		t.Fatalf("the mbox fsync did not fail (exit %d: %s):\n%s", code, out, tr.dump())
	}
	if code != 111 || strings.HasPrefix(out, "did ") || exitOf(ev, 0) != nil {
		t.Errorf("mbox fsync failed: qmail-local exited %d: %s", code, out)
	}
	if b, err := os.ReadFile(mbox); err != nil || string(b) != old {
		t.Errorf("mbox after the failed delivery: %q (%v); want it as before", b, err)
	}
}
