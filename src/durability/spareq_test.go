package durability

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/sandbox"
)

// TestQueuedTrimsReusedSpare checks qmail-queued's reuse of spare/q, whose files keep
// the data of the message or envelope they last held: with every spare holding more
// old data than the new message needs, the message's mess/ and intd/ files (both made
// from spares) are cut to what was written before the sync that precedes the todo/
// link (checkEnqueueOrder counts a truncation as a change that must be synced), and
// the delivered message holds none of the old data.
func TestQueuedTrimsReusedSpare(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	q := h.Queue()
	q.Dir = realDir(t, q.Dir)
	// More spares than qmail-clean tops spare/q up to, so that it adds no empty ones:
	// every spare qmail-queued can take holds old data.
	old := strings.Repeat("OLD DATA of a finished message\n", 300)
	spare := filepath.Join(q.Dir, queue.SpareQ)
	for i := 0; i < queue.SpareLowWater+16; i++ {
		tmp := filepath.Join(spare, ".plant")
		if err := os.WriteFile(tmp, []byte(old), 0600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(tmp, h.UID, h.GID); err != nil { // the MTA's user, as root
			t.Fatal(err)
		}
		fi, err := os.Stat(tmp)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(spare, strconv.FormatUint(inodeOf(fi), 10))); err != nil {
			t.Fatal(err)
		}
	}
	m := startTracedMTA(t, h, nil)
	waitQueued(t, h)
	body := "Subject: made of a spare\n\nshort\n"
	if err := h.Submit(strings.NewReader(body), "bob@far.example", []string{"alice@" + h.Domain}); err != nil {
		t.Fatal(err)
	}
	msgs := h.WaitMessages(t, "alice", 1)
	waitFor(t, "an empty queue", h.QueueEmpty)
	m.stop()
	tr := m.tr
	ev := tr.load()
	if d := string(msgs[0].Data); strings.Contains(d, "OLD DATA") || !strings.HasSuffix(d, "\n\nshort\n") {
		t.Errorf("delivered message holds old data or lost its end:\n%s", d)
	}
	qid, link := queuedID(t, tr, q.Dir)
	reply := find(ev, link.Seq, func(e Event) bool {
		return e.Call == "write" && e.OK() && strings.Contains(e.Args, "socket:[") && (e.Data() == "\x00" || e.Data() == "\x00Q")
	})
	if reply == nil {
		t.Fatalf("qmail-queued sent no success reply after linking %d into todo/:\n%s", qid, tr.dump())
	}
	checkEnqueueOrder(t, tr, q, qid, link, reply.Seq)
	// Both files came from spare/q and were cut to length before the link.
	for _, sub := range []string{"mess", "intd"} {
		p := q.Path(sub, qid)
		names := Names(ev, q.Dir, p, link.Seq)
		fromSpare := false
		for n := range names {
			fromSpare = fromSpare || filepath.Dir(n) == spare
		}
		trim := find(ev, 0, func(e Event) bool {
			s, ok := names[e.FDPath()]
			return e.Call == "ftruncate" && e.OK() && ok && s.Has(e) && e.Seq < link.Seq
		})
		switch {
		case !fromSpare:
			t.Errorf("%s was not made from a spare: names %v", p, names)
		case trim == nil:
			t.Errorf("%s, made from a spare holding old data, was not cut to length before the todo/ link (#%d)", p, link.Seq)
		default:
			t.Logf("%s: cut to length at #%d (%s), linked at #%d", p, trim.Seq, trim.Line, link.Seq)
		}
	}
	if t.Failed() {
		t.Logf("trace:\n%s", tr.dump())
	}
}

func inodeOf(fi os.FileInfo) uint64 { return fi.Sys().(*syscall.Stat_t).Ino }
