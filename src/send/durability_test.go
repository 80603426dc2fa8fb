package send

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/notqmail/notqmail/src/groupsync"
	"github.com/notqmail/notqmail/src/sandbox"
)

// syncRecorder replaces fsync and the queue's syncer and records, for each sync, the
// file's name ("syncfs" for a sync of the whole file system), calling check (if set)
// with it at that moment.
type syncRecorder struct {
	mu    sync.Mutex
	names []string
	check func(name string)
}

// syncfsName stands for a sync of the whole file system in a syncRecorder.
const syncfsName = "syncfs"

func recordSyncs(t *testing.T, r *syncRecorder) {
	t.Helper()
	old := fsync
	fsync = func(f *os.File) error {
		r.record(f.Name())
		return old(f)
	}
	oldOpen := openSyncer
	openSyncer = func(dir string) (syncer, error) {
		s, err := oldOpen(dir)
		if err != nil {
			return nil, err
		}
		return recordingSyncer{s, r}, nil
	}
	t.Cleanup(func() { fsync, openSyncer = old, oldOpen })
}

func (r *syncRecorder) record(name string) {
	r.mu.Lock()
	r.names = append(r.names, name)
	check := r.check
	r.mu.Unlock()
	if check != nil {
		check(name)
	}
}

// recordingSyncer records each SyncSince call in a syncRecorder before it starts: what the
// check sees then is covered by the sync.
type recordingSyncer struct {
	syncer
	r *syncRecorder
}

func (s recordingSyncer) SyncSince(m groupsync.Mark) error {
	s.r.record(syncfsName)
	return s.syncer.SyncSince(m)
}

func (r *syncRecorder) synced(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.names {
		if filepath.Clean(n) == filepath.Clean(name) {
			return true
		}
	}
	return false
}

// A permanent failure's bounce record must be on disk before the recipient is marked
// done: otherwise a power cut can keep the D mark and lose the bounce record, and the
// recipient is then neither delivered nor bounced.
func TestBounceRecordSyncedBeforeMarkDone(t *testing.T) {
	q := makeQueue(t)
	const id = 7
	local := q.Path("local", id)
	if err := os.WriteFile(local, []byte("Tperm@here.example\x00"), 0600); err != nil {
		t.Fatal(err)
	}
	r := &syncRecorder{}
	marked := false
	r.check = func(name string) {
		b, _ := os.ReadFile(local)
		if bytes.HasPrefix(b, []byte("D")) {
			marked = true
		}
	}
	recordSyncs(t, r)
	d := &Daemon{Queue: q, Config: &Config{Rewriter: &Rewriter{}}, Log: Logger{W: &sandbox.Log{}}}
	d.addBounce(id, "perm@here.example", "Sorry.\n")
	d.markDone(Local, id, 0)
	if !r.synced(q.Path("bounce", id)) {
		t.Error("bounce record not fsynced")
	}
	if !r.synced(filepath.Dir(q.Path("bounce", id))) {
		t.Error("new bounce file's directory not fsynced")
	}
	if marked {
		t.Error("recipient marked done before its bounce record was synced")
	}
	b, err := os.ReadFile(local)
	if err != nil || b[0] != 'D' {
		t.Fatalf("local file %q, %v", b, err)
	}
}

// Preprocessing must make info/, local/ and remote/ entries durable before it asks
// qmail-clean to remove todo/: a power cut must not keep the removal and lose them.
// A sync of the whole file system started while all three are written covers them.
func TestPreprocessSyncsBeforeTodoRemoved(t *testing.T) {
	q := makeQueue(t)
	r := &syncRecorder{}
	var todoGoneAtSync, covered atomic.Bool // set by the check, in preprocessing
	id := enqueue(t, q, "joe@remote.example", "hold1@here.example", "hold2@far.example")
	todo := q.Path("todo", id)
	want := map[string]string{
		"info":   "Fjoe@remote.example\x00",
		"local":  "Thold1@here.example\x00",
		"remote": "Thold2@far.example\x00",
	}
	r.check = func(name string) {
		if _, err := os.Stat(todo); err != nil {
			todoGoneAtSync.Store(true)
			return
		}
		if name != syncfsName {
			return
		}
		for sub, w := range want {
			if b, err := os.ReadFile(q.Path(sub, id)); err != nil || string(b) != w {
				return
			}
		}
		covered.Store(true)
	}
	recordSyncs(t, r)
	h := startDaemon(t, q, 604800)
	h.pull()
	waitFor(t, h, "preprocessing", func() bool {
		_, err := os.Stat(todo)
		return os.IsNotExist(err)
	})
	if !covered.Load() {
		r.mu.Lock()
		t.Errorf("no sync started with info/, local/ and remote/ written, before todo/ went: %v", r.names)
		r.mu.Unlock()
	}
	if todoGoneAtSync.Load() {
		t.Error("todo/ removed before the new entries were synced")
	}
	close(h.spawn[Local].release)
	close(h.spawn[Remote].release)
	waitFor(t, h, "delivery", func() bool { return gone(q, id) })
}

// A huge control/queuelifetime must mean "keep trying", not overflow into a lifetime
// that has already run out and turn every temporary failure into a bounce.
func TestHugeLifetimeDoesNotBounce(t *testing.T) {
	q := makeQueue(t)
	h := startDaemon(t, q, math.MaxInt64)
	id := enqueue(t, q, "joe@remote.example", "temp@here.example")
	h.pull()
	waitFor(t, h, "the deferral", func() bool { return strings.Contains(h.log.String(), ": deferral: ") })
	if strings.Contains(h.log.String(), ": failure: ") {
		t.Errorf("temporary failure bounced:\n%s", h.log.String())
	}
	if _, err := os.Stat(q.Path("bounce", id)); err == nil {
		t.Error("bounce file written for a temporary failure")
	}
	if b, err := os.ReadFile(q.Path("local", id)); err != nil || !bytes.HasPrefix(b, []byte("T")) {
		t.Errorf("recipient no longer queued: %q, %v", b, err)
	}
}

// tapWriter records each request written to qmail-clean in the sync recorder's
// sequence (one write may carry several).
type tapWriter struct {
	w io.Writer
	r *syncRecorder
}

func (t tapWriter) Write(p []byte) (int, error) {
	t.r.mu.Lock()
	for _, req := range bytes.Split(bytes.TrimRight(p, "\x00"), []byte{0}) {
		t.r.names = append(t.r.names, "clean:"+string(req))
	}
	t.r.mu.Unlock()
	return t.w.Write(p)
}

// With many messages preprocessed at once and files taken from spare/s, each
// message's info/, local/ and remote/ files are complete when a sync starts, and only
// after that is todo/ removal requested.
func TestConcurrentPreprocessSyncOrder(t *testing.T) {
	q := makeQueue(t)
	makeSpares(t, q, 10)
	r := &syncRecorder{}
	var ids []uint64
	// complete[id]: the first entry of r.names at which a sync started with the
	// message's files complete (checked under r.mu: the check runs outside it).
	var cmu sync.Mutex
	complete := map[uint64]int{}
	r.check = func(name string) {
		if name != syncfsName {
			return
		}
		r.mu.Lock()
		at := len(r.names) - 1 // at least this entry; a later one is no better
		r.mu.Unlock()
		for i, id := range ids {
			cmu.Lock()
			_, seen := complete[id]
			cmu.Unlock()
			if seen {
				continue
			}
			info, _ := os.ReadFile(q.Path("info", id))
			local, _ := os.ReadFile(q.Path("local", id))
			remote, _ := os.ReadFile(q.Path("remote", id))
			if string(info) == "Fjoe@remote.example\x00" &&
				string(local) == fmt.Sprintf("Tok%d@here.example\x00", i) &&
				string(remote) == fmt.Sprintf("Tok%d@far.example\x00", i) {
				cmu.Lock()
				complete[id] = at
				cmu.Unlock()
			}
		}
	}
	for i := 0; i < 40; i++ {
		ids = append(ids, enqueue(t, q, "joe@remote.example", fmt.Sprintf("ok%d@here.example", i), fmt.Sprintf("ok%d@far.example", i)))
	}
	recordSyncs(t, r)
	oldTap := cleanTap
	cleanTap = func(w io.Writer) io.Writer { return tapWriter{w, r} }
	t.Cleanup(func() { cleanTap = oldTap })
	h := startDaemon(t, q, 604800)
	h.pull()
	waitFor(t, h, "delivery", func() bool {
		for _, id := range ids {
			if !gone(q, id) {
				return false
			}
		}
		return true
	})
	r.mu.Lock()
	seq := append([]string(nil), r.names...)
	r.mu.Unlock()
	cmu.Lock()
	defer cmu.Unlock()
	for _, id := range ids {
		req := -1
		for i, n := range seq {
			if n == "clean:todo/"+num(id) {
				req = i
				break
			}
		}
		if req < 0 {
			t.Errorf("no todo/ removal requested for %d", id)
			continue
		}
		at, ok := complete[id]
		if !ok || at > req {
			t.Errorf("message %d: todo/ removal requested at %d, sync with its files complete at %d (%v)", id, req, at, ok)
		}
	}
}

// failingSyncer fails its first fails syncs, as a syncfs reporting a writeback error
// would.
type failingSyncer struct {
	syncer
	mu    sync.Mutex
	fails int
}

func (s *failingSyncer) SyncSince(m groupsync.Mark) error {
	s.mu.Lock()
	fail := s.fails > 0
	s.fails--
	s.mu.Unlock()
	if fail {
		return syscall.EIO
	}
	return s.syncer.SyncSince(m)
}

// A failed sync in preprocessing is a temporary failure: todo/ stays, nothing is
// scheduled from files that may not be on disk, and the message is preprocessed
// again and delivered once syncs work.
func TestPreprocessSyncFailureKeepsTodo(t *testing.T) {
	// The failing sync must be preprocessing's, not one a pool of new spares forces.
	low := spareLowWater
	t.Cleanup(func() { spareLowWater = low }) // after the daemon's stop
	spareLowWater = 0
	q := makeQueue(t)
	old := openSyncer
	// Syncs fail until the checks below are done: a second scan of todo/ (a trigger
	// pulled twice) must not succeed behind the test's back.
	fs := &failingSyncer{fails: 1 << 30}
	openSyncer = func(dir string) (syncer, error) {
		s, err := old(dir)
		if err != nil {
			return nil, err
		}
		fs.syncer = s
		return fs, nil
	}
	t.Cleanup(func() { openSyncer = old })
	id := enqueue(t, q, "joe@remote.example", "ok1@here.example")
	h := startDaemon(t, q, 604800)
	h.pull()
	waitFor(t, h, "the warning", func() bool { return strings.Contains(h.log.String(), "warning: trouble syncing info/") })
	if _, err := os.Stat(q.Path("todo", id)); err != nil {
		t.Fatalf("todo/ went after a failed sync: %v", err)
	}
	if h.spawn[Local].count("ok1@here.example") != 0 {
		t.Fatal("a delivery started from files that were never synced")
	}
	fs.mu.Lock()
	fs.fails = 0
	fs.mu.Unlock()
	h.pull()
	waitFor(t, h, "delivery", func() bool { return gone(q, id) })
	if n := h.spawn[Local].count("ok1@here.example"); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
}
