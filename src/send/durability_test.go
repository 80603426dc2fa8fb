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
	"testing"

	"github.com/notqmail/notqmail/src/sandbox"
)

// syncRecorder replaces fsync and records, for each sync, the file's name and what
// check (if set) returned at that moment.
type syncRecorder struct {
	mu    sync.Mutex
	names []string
	check func(name string)
}

func recordSyncs(t *testing.T, r *syncRecorder) {
	t.Helper()
	old := fsync
	fsync = func(f *os.File) error {
		r.mu.Lock()
		r.names = append(r.names, f.Name())
		check := r.check
		r.mu.Unlock()
		if check != nil {
			check(f.Name())
		}
		return old(f)
	}
	t.Cleanup(func() { fsync = old })
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
func TestPreprocessSyncsDirsBeforeTodoRemoved(t *testing.T) {
	q := makeQueue(t)
	r := &syncRecorder{}
	todoGoneAtSync := false
	id := enqueue(t, q, "joe@remote.example", "hold1@here.example", "hold2@far.example")
	todo := q.Path("todo", id)
	r.check = func(name string) {
		if _, err := os.Stat(todo); err != nil {
			todoGoneAtSync = true
		}
	}
	recordSyncs(t, r)
	h := startDaemon(t, q, 604800)
	h.pull()
	waitFor(t, h, "preprocessing", func() bool {
		_, err := os.Stat(todo)
		return os.IsNotExist(err)
	})
	for _, sub := range []string{"info", "local", "remote"} {
		if !r.synced(filepath.Dir(q.Path(sub, id))) {
			t.Errorf("%s/ directory not fsynced", sub)
		}
	}
	if todoGoneAtSync {
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

// tapWriter records each write to qmail-clean in the sync recorder's sequence.
type tapWriter struct {
	w io.Writer
	r *syncRecorder
}

func (t tapWriter) Write(p []byte) (int, error) {
	t.r.mu.Lock()
	t.r.names = append(t.r.names, "clean:"+string(bytes.TrimRight(p, "\x00")))
	t.r.mu.Unlock()
	return t.w.Write(p)
}

// With many messages preprocessed at once and files taken from spare/s, each
// message's info/, local/ and remote/ files are synced, then their directories, and
// only then is todo/ removal requested.
func TestConcurrentPreprocessSyncOrder(t *testing.T) {
	q := makeQueue(t)
	makeSpares(t, q, 10)
	r := &syncRecorder{}
	recordSyncs(t, r)
	oldTap := cleanTap
	cleanTap = func(w io.Writer) io.Writer { return tapWriter{w, r} }
	t.Cleanup(func() { cleanTap = oldTap })
	var ids []uint64
	for i := 0; i < 40; i++ {
		ids = append(ids, enqueue(t, q, "joe@remote.example", fmt.Sprintf("ok%d@here.example", i), fmt.Sprintf("ok%d@far.example", i)))
	}
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
	index := func(name string, after int) int {
		for i := after + 1; i < len(seq); i++ {
			if filepath.Clean(seq[i]) == filepath.Clean(name) {
				return i
			}
		}
		return -1
	}
	for _, id := range ids {
		req := index("clean:todo/"+num(id), -1)
		if req < 0 {
			t.Errorf("no todo/ removal requested for %d", id)
			continue
		}
		for _, sub := range []string{"info", "local", "remote"} {
			f := index(q.Path(sub, id), -1)
			if f < 0 || f > req {
				t.Errorf("%s/%d synced at %d, todo/ removal requested at %d", sub, id, f, req)
				continue
			}
			if d := index(filepath.Dir(q.Path(sub, id)), f); d < 0 || d > req {
				t.Errorf("%s/%d's directory synced at %d (file at %d), todo/ removal requested at %d", sub, id, d, f, req)
			}
		}
	}
}
