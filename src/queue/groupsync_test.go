package queue

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/notqmail/notqmail/src/groupsync"
)

// observingSync is a group syncer that records, at each call, what the queue holds,
// and fails the calls its script says to.
type observingSync struct {
	t      *testing.T
	q      Queue
	fail   []bool
	seen   [][]string // files under the queue at each call
	size   []map[string]int64
	todo   []int            // entries of todo/ at each call
	marked [][]string       // files under the queue at each Mark
	since  []groupsync.Mark // the mark given to each SyncSince
}

// Mark records what the queue holds when the mark is taken: nothing of the message
// may have been written yet.
func (s *observingSync) Mark() groupsync.Mark {
	s.marked = append(s.marked, files(s.t, s.q))
	return groupsync.Mark(len(s.marked))
}

func (s *observingSync) SyncSince(m groupsync.Mark) error {
	n := len(s.seen)
	s.since = append(s.since, m)
	s.seen = append(s.seen, files(s.t, s.q))
	sizes := map[string]int64{}
	for _, f := range s.seen[n] {
		if fi, err := os.Stat(s.q.Dir + "/" + f); err == nil {
			sizes[s.q.Dir+"/"+f] = fi.Size()
		}
	}
	s.size = append(s.size, sizes)
	ids, err := s.q.Todo()
	if err != nil {
		s.t.Fatal(err)
	}
	s.todo = append(s.todo, len(ids))
	if n < len(s.fail) && s.fail[n] {
		return syscall.EIO
	}
	return nil
}

// With Options.Sync, EnqueueWith makes a message durable with two group syncs: the
// first once mess/ and intd/ are complete and before the todo/ link, the second after
// the link and before it returns. Both check from a mark taken before the first write.
func TestEnqueueGroupSyncOrder(t *testing.T) {
	q := newQueue(t, 23)
	s := &observingSync{t: t, q: q}
	body := "Subject: x\n\nhi\n"
	if err := EnqueueWith(q, strings.NewReader(body), strings.NewReader(testEnv), testCaller, Options{Sync: s}); err != nil {
		t.Fatal(err)
	}
	if len(s.seen) != 2 {
		t.Fatalf("%d group syncs, want 2", len(s.seen))
	}
	// One mark, taken before the message's first file was made, serves both syncs.
	if len(s.marked) != 1 || len(s.marked[0]) != 0 {
		t.Errorf("marks taken with these files in the queue: %q, want one, with none", s.marked)
	}
	if s.since[0] != 1 || s.since[1] != 1 {
		t.Errorf("syncs since marks %v, want both since the one mark (1)", s.since)
	}
	if s.todo[0] != 0 || s.todo[1] != 1 {
		t.Errorf("todo/ entries at the syncs: %v, want [0 1]", s.todo)
	}
	ids, _ := q.Todo()
	if len(ids) != 1 {
		t.Fatalf("todo: %v", ids)
	}
	id := ids[0]
	mess, intd := q.Path("mess", id), q.Path("intd", id)
	// At the first sync mess/ and intd/ already hold the whole message and envelope.
	for _, p := range []string{mess, intd} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := s.size[0][p]; !ok || got != fi.Size() {
			t.Errorf("at the first sync %s had %d bytes (present: %v), want %d", p, got, ok, fi.Size())
		}
	}
	if b, _ := os.ReadFile(mess); !strings.HasSuffix(string(b), body) {
		t.Errorf("mess = %q", b)
	}
}

// A failed group sync before the link leaves nothing behind (53); one after the link
// leaves the message queued and still reports 53.
func TestEnqueueGroupSyncFailure(t *testing.T) {
	for _, tc := range []struct {
		fail   []bool
		queued int
	}{{[]bool{true}, 0}, {[]bool{false, true}, 1}} {
		q := newQueue(t, 23)
		s := &observingSync{t: t, q: q, fail: tc.fail}
		err := EnqueueWith(q, strings.NewReader("Subject: x\n\nhi\n"), strings.NewReader(testEnv), testCaller, Options{Sync: s})
		if Code(err) != ExitWrite || !strings.Contains(err.Error(), syscall.EIO.Error()) {
			t.Errorf("sync failures %v: %v, want exit %d with EIO", tc.fail, err, ExitWrite)
		}
		ids, _ := q.Todo()
		if len(ids) != tc.queued {
			t.Errorf("sync failures %v: %d queued, want %d", tc.fail, len(ids), tc.queued)
		}
		if tc.queued == 0 {
			if left := files(t, q); len(left) > 0 {
				t.Errorf("sync failures %v: the queue holds %v", tc.fail, left)
			}
		}
	}
}

// Many writers sharing one groupsync.Syncer, with spares and without, each queue
// their own message intact.
func TestEnqueueGroupSyncConcurrent(t *testing.T) {
	q := newQueue(t, 23)
	s, err := groupsync.Open(q.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 20 {
		makeSpare(t, q)
	}
	o := Options{Sync: s, Spares: NewSpares(q)}
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := testCaller
			c.PID = 1000 + i
			opts := o
			opts.PidName = fmt.Sprintf("test.%d", i)
			errs <- EnqueueWith(q, strings.NewReader(fmt.Sprintf("Subject: %d\n\nbody %d\n", i, i)), strings.NewReader(testEnv), c, opts)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	ids, _ := q.Todo()
	if len(ids) != n {
		t.Fatalf("%d queued, want %d", len(ids), n)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		b, err := os.ReadFile(q.Path("mess", id))
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(b, []byte("body "))
		if i < 0 {
			t.Fatalf("message %d: %q", id, b)
		}
		seen[string(b[i:])] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct bodies among %d messages", len(seen), n)
	}
}
