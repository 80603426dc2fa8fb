package send

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/groupsync"
	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/sandbox"
)

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// makeSpares adds queue/spare/s to q holding n old spare files, each holding old data
// longer than a test message's files, and returns their inodes.
func makeSpares(t *testing.T, q queue.Queue, n int) map[uint64]bool {
	t.Helper()
	dir := filepath.Join(q.Dir, queue.SpareS)
	if err := os.MkdirAll(dir, 0700); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	inos := map[uint64]bool{}
	for i := 0; i < n; i++ {
		tmp := filepath.Join(dir, "tmp")
		data := []byte("Tstale-recipient-from-an-older-message@here.example\x00Tanother@here.example\x00")
		if err := os.WriteFile(tmp, data, 0600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(tmp, old, old)
		ino := inode(t, tmp)
		if err := os.Rename(tmp, filepath.Join(dir, strconv.FormatUint(ino, 10))); err != nil {
			t.Fatal(err)
		}
		inos[ino] = true
	}
	return inos
}

// New info/ and local/ files take spare inodes, with fresh times and no trace of their
// old data; a finished message's files go back to spare/s, named by their inodes.
func TestSparesReused(t *testing.T) {
	q := makeQueue(t)
	spareInos := makeSpares(t, q, 4)
	before := time.Now().Add(-2 * time.Second) // the file system's clock granularity
	h := startDaemon(t, q, 604800)
	id := enqueue(t, q, "joe@remote.example", "hold@here.example", "hold2@far.example")
	h.pull()
	waitFor(t, h, "preprocessing", func() bool {
		_, err := os.Stat(q.Path("todo", id))
		return os.IsNotExist(err)
	})
	for _, sub := range []string{"info", "local", "remote"} {
		p := q.Path(sub, id)
		if !spareInos[inode(t, p)] {
			t.Errorf("%s is not a spare inode", sub)
		}
		fi, _ := os.Stat(p)
		if fi.ModTime().Before(before) {
			t.Errorf("%s mtime %v, not fresh", sub, fi.ModTime())
		}
		if fi.Mode().Perm() != umaskedMode() {
			t.Errorf("%s mode %v, want %v", sub, fi.Mode().Perm(), umaskedMode())
		}
	}
	if b, _ := os.ReadFile(q.Path("info", id)); string(b) != "Fjoe@remote.example\x00" {
		t.Errorf("info %q", b)
	}
	if b, _ := os.ReadFile(q.Path("local", id)); string(b) != "Thold@here.example\x00" {
		t.Errorf("local %q", b)
	}
	if b, _ := os.ReadFile(q.Path("remote", id)); string(b) != "Thold2@far.example\x00" {
		t.Errorf("remote %q", b)
	}
	inos := map[string]uint64{}
	for _, sub := range []string{"info", "local", "remote"} {
		inos[sub] = inode(t, q.Path(sub, id))
	}
	close(h.spawn[Local].release)
	close(h.spawn[Remote].release)
	waitFor(t, h, "delivery", func() bool { return gone(q, id) })
	for sub, ino := range inos {
		p := filepath.Join(q.Dir, queue.SpareS, strconv.FormatUint(ino, 10))
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s's inode not back in spare/s: %v", sub, err)
		}
	}
	if h.spawn[Local].count("hold@here.example") != 1 || h.spawn[Remote].count("hold2@far.example") != 1 {
		t.Error("recipients not tried exactly once")
	}
}

// On a file system short of room, spare/s never grows beyond spareMax: past it,
// files are unlinked.
func TestSparesBounded(t *testing.T) {
	dir := t.TempDir()
	sdir := filepath.Join(dir, "s")
	os.Mkdir(sdir, 0700)
	s := openSpares(sdir, 0600, testCommits(t))
	s.room = func() bool { return false }
	for i := 0; i < spareMax+5; i++ {
		p := filepath.Join(dir, fmt.Sprint("f", i))
		if err := os.WriteFile(p, []byte("data"), 0600); err != nil {
			t.Fatal(err)
		}
		if err := s.remove(p); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s still there: %v", p, err)
		}
	}
	names, _ := os.ReadDir(sdir)
	if len(names) != spareMax || s.count() != spareMax {
		t.Errorf("%d spares on disk, %d known; want %d", len(names), s.count(), spareMax)
	}
	for _, e := range names[:10] {
		fi, _ := e.Info()
		if strconv.FormatUint(fi.Sys().(*syscall.Stat_t).Ino, 10) != e.Name() {
			t.Errorf("spare %s: inode %d", e.Name(), fi.Sys().(*syscall.Stat_t).Ino)
		}
	}
	if err := s.remove(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("removing a missing file: %v", err)
	}
	// A fresh pool over the same directory knows the spares and hands them out.
	s2 := openSpares(sdir, 0600, testCommits(t))
	if s2.count() != spareMax {
		t.Fatalf("reopened pool knows %d spares", s2.count())
	}
	f, err := s2.create(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("ab"))
	if err := trim(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if s2.count() != spareMax-1 {
		t.Errorf("create did not take a spare")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "new")); string(b) != "ab" {
		t.Errorf("reused spare holds %q after trim", b)
	}
	if _, err := s2.create(filepath.Join(dir, "new")); err == nil {
		t.Error("create replaced an existing file")
	}
}

// A spare with a second link (a rename whose old name came back after a crash) is
// never handed out: two messages would share one inode.
func TestSpareWithTwoLinksRefused(t *testing.T) {
	dir := t.TempDir()
	sdir := filepath.Join(dir, "s")
	os.Mkdir(sdir, 0700)
	p := filepath.Join(dir, "info1")
	os.WriteFile(p, []byte("Fjoe@example.org\x00"), 0600)
	ino := strconv.FormatUint(inode(t, p), 10)
	if err := os.Link(p, filepath.Join(sdir, ino)); err != nil {
		t.Fatal(err)
	}
	s := openSpares(sdir, 0600, testCommits(t))
	f, err := s.create(filepath.Join(dir, "info2"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if strconv.FormatUint(inode(t, filepath.Join(dir, "info2")), 10) == ino {
		t.Error("a linked spare was reused")
	}
	if b, _ := os.ReadFile(p); string(b) != "Fjoe@example.org\x00" {
		t.Errorf("the other link's data changed: %q", b)
	}
}

// Stopping qmail-send in the middle of a backlog and starting it again delivers every
// recipient exactly once: nothing marked done is redone, nothing is lost.
func TestRestartMidBacklog(t *testing.T) {
	q := makeQueue(t)
	makeSpares(t, q, 0)
	const n = 400
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = enqueue(t, q, "joe@remote.example", fmt.Sprintf("ok%d@here.example", i), fmt.Sprintf("ok%d@far.example", i))
	}
	h1 := startDaemon(t, q, 604800)
	h1.pull()
	waitFor(t, h1, "some deliveries", func() bool { return strings.Count(h1.log.String(), "end msg ") >= n/4 })
	h1.stop(t)
	h1.done <- nil // the cleanup stops it again
	ended := strings.Count(h1.log.String(), "end msg ")
	if ended >= n {
		t.Logf("all %d messages finished before the stop", n)
	}
	h2 := startDaemon(t, q, 604800)
	h2.pull()
	waitFor(t, h2, "the rest", func() bool {
		for _, id := range ids {
			if !gone(q, id) {
				return false
			}
		}
		return true
	})
	for i := 0; i < n; i++ {
		for c, dom := range []string{"here.example", "far.example"} {
			r := fmt.Sprintf("ok%d@%s", i, dom)
			if got := h1.spawn[c].count(r) + h2.spawn[c].count(r); got != 1 {
				t.Errorf("%s delivered %d times", r, got)
			}
		}
	}
	if strings.Contains(h1.log.String()+h2.log.String(), "warning:") {
		t.Errorf("warnings:\n%s\n%s", grepLines(h1.log.String(), "warning:"), grepLines(h2.log.String(), "warning:"))
	}
	todo, _ := os.ReadDir(filepath.Join(q.Dir, "todo"))
	if len(todo) != 0 {
		t.Errorf("%d entries left in todo/", len(todo))
	}
}

// Killing the whole MTA (SIGKILL to every process) in the middle of a backlog and
// starting it again loses no message, and redelivers at most the deliveries that were
// under way: nothing whose delivery had been recorded is delivered again.
func TestKillMidBacklogRealMTA(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a whole MTA")
	}
	h := sandbox.New(t, sandbox.Options{})
	q := h.Queue()
	const n = 300
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("Subject: backlog %d\n\nbody %d\n", i, i)
		env := "Fbench@example.org\x00Talice@" + h.Domain + "\x00\x00"
		c := queue.Caller{UID: 7, PID: 200000 + i, Invoked: "by uid 7", Time: time.Now()}
		if err := queue.Enqueue(q, strings.NewReader(msg), strings.NewReader(env), c); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() == 0 {
		filepath.Walk(q.Dir, func(p string, fi os.FileInfo, err error) error {
			if err == nil {
				os.Lchown(p, h.UID, h.GID)
			}
			return nil
		})
	}
	log := &sandbox.Log{}
	m1 := h.StartMTA(t, sandbox.MTAOptions{Log: log})
	m1.WaitFor("some deliveries", func() bool { return strings.Count(log.String(), "end msg ") >= n/5 })
	m1.Kill()
	t.Logf("killed after %d of %d messages finished", strings.Count(log.String(), "end msg "), n)
	m2 := h.StartMTA(t, sandbox.MTAOptions{Log: log})
	m2.WaitFor("an empty queue", h.QueueEmpty)
	m2.Stop()
	// Helpers of the killed or stopped MTA may still be finishing (qmail-clean
	// recycling into spare/q); the home is removed only after them.
	for i := 0; processesIn(h.Dir) && i < 500; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	msgs, err := h.Messages("alice")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, m := range msgs {
		i := bytes.Index(m.Data, []byte("Subject: backlog "))
		if i < 0 {
			t.Errorf("unexpected message %s", m.Path)
			continue
		}
		seen[string(bytes.SplitN(m.Data[i:], []byte("\n"), 2)[0])]++
	}
	dups := 0
	for i := 0; i < n; i++ {
		switch k := seen[fmt.Sprintf("Subject: backlog %d", i)]; {
		case k == 0:
			t.Errorf("message %d lost", i)
		case k > 1:
			dups += k - 1
		}
	}
	// Only deliveries under way at the kill may be made twice.
	if dups > 10 {
		t.Errorf("%d duplicate deliveries, more than concurrencylocal", dups)
	}
	if strings.Contains(log.String(), "alert:") {
		t.Errorf("alerts:\n%s", grepLines(log.String(), "alert:"))
	}
}

// processesIn reports whether any process has its working directory under dir.
func processesIn(dir string) bool {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd"); err == nil && strings.HasPrefix(cwd, dir) {
			return true
		}
	}
	return false
}

// testCommits returns commits on t's temporary directory's file system.
func testCommits(t *testing.T) *commits {
	t.Helper()
	sy, err := openSyncer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := newCommits(sy)
	t.Cleanup(func() { c.close() })
	return c
}

// A spare is rewritten only after its removal from its directory is on disk: a sync
// started after the rename. Otherwise a crash could bring back its old name over
// another message's data. While the pool is small, such a spare is passed over for a
// new file; from spareWait on, the queue is synced and it is used.
func TestSpareReusedOnlyAfterRemovalSynced(t *testing.T) {
	dir := t.TempDir()
	sdir, from := filepath.Join(dir, "s"), filepath.Join(dir, "local")
	os.Mkdir(sdir, 0700)
	os.Mkdir(from, 0700)
	r := &syncRecorder{}
	recordSyncs(t, r)
	syncs := testCommits(t)
	s := openSpares(sdir, 0600, syncs)
	// A sync call under way during the rename (numbered before it) does not cover it.
	syncs.mu.Lock()
	underWay := syncs.next
	syncs.next++
	syncs.mu.Unlock()
	old := filepath.Join(from, "5")
	os.WriteFile(old, []byte("Told@example.org\x00"), 0600)
	oldIno := inode(t, old)
	if err := s.remove(old); err != nil {
		t.Fatal(err)
	}
	f, err := s.create(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if s.count() != 1 || inode(t, filepath.Join(dir, "new")) == oldIno {
		t.Fatal("a spare whose removal is not on disk was reused")
	}
	if len(r.names) != 0 {
		t.Fatalf("create waited for a sync instead of creating a file: %v", r.names)
	}
	// That call succeeds: still not enough.
	syncs.mu.Lock()
	syncs.done = underWay
	syncs.mu.Unlock()
	f, err = s.create(filepath.Join(dir, "new1"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if s.count() != 1 || inode(t, filepath.Join(dir, "new1")) == oldIno {
		t.Fatal("a spare was reused on a sync that started before its removal")
	}
	// Once the queue has been synced since (for another message), it is used.
	if err := syncs.sync(syncs.begin()); err != nil {
		t.Fatal(err)
	}
	f, err = s.create(filepath.Join(dir, "new2"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if s.count() != 0 || inode(t, filepath.Join(dir, "new2")) != oldIno {
		t.Fatal("the spare was not reused after the sync")
	}
	// A pool of spareWait spares none of whose removals is on disk: the queue is
	// synced and the oldest used.
	for i := 0; i < spareWait; i++ {
		p := filepath.Join(from, fmt.Sprint("m", i))
		os.WriteFile(p, nil, 0600)
		if err := s.remove(p); err != nil {
			t.Fatal(err)
		}
	}
	r.mu.Lock()
	n := len(r.names)
	r.mu.Unlock()
	f, err = s.create(filepath.Join(dir, "new3"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if s.count() != spareWait-1 {
		t.Fatal("a full pool's oldest spare was not used")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.names) != n+1 || r.names[n] != syncfsName {
		t.Errorf("syncs for the reuse: %v, want one syncfs", r.names[n:])
	}
	// The one sync covered the whole pool: the next spare is used without another.
	r.mu.Unlock()
	f, err = s.create(filepath.Join(dir, "new4"))
	r.mu.Lock()
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if s.count() != spareWait-2 || len(r.names) != n+1 {
		t.Errorf("after one sync: %d spares left, syncs %v", s.count(), r.names[n:])
	}
}

// topUp fills the pool with new empty spares named by their inodes, clears a
// temporary file a stopped run left, and hands a new spare out only once a sync
// started after its creation has completed, as for a recycled one.
func TestSpareTopUp(t *testing.T) {
	dir := t.TempDir()
	sdir := filepath.Join(dir, "s")
	if err := os.Mkdir(sdir, 0700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sdir, ".new"), []byte("left"), 0600); err != nil {
		t.Fatal(err)
	}
	syncs := testCommits(t)
	s := openSpares(sdir, 0640, syncs)
	if n := s.topUp(5, nil); n != 5 {
		t.Fatalf("topUp made %d, want 5", n)
	}
	if n := s.topUp(5, nil); n != 0 {
		t.Fatalf("second topUp made %d", n)
	}
	ents, err := os.ReadDir(sdir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 5 {
		t.Fatalf("spare dir: %v", ents)
	}
	made := map[uint64]bool{}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		ino := fi.Sys().(*syscall.Stat_t).Ino
		if strconv.FormatUint(ino, 10) != e.Name() || fi.Size() != 0 || fi.Mode().Perm() != 0640 {
			t.Errorf("spare %s: inode %d size %d mode %v", e.Name(), ino, fi.Size(), fi.Mode())
		}
		made[ino] = true
	}
	// No sync since they were made: their names may not be on disk yet.
	f, err := s.create(filepath.Join(dir, "first"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if made[inode(t, filepath.Join(dir, "first"))] || s.count() != 5 {
		t.Fatal("a new spare was used before a sync covered its name")
	}
	if err := syncs.sync(syncs.begin()); err != nil {
		t.Fatal(err)
	}
	f, err = s.create(filepath.Join(dir, "second"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !made[inode(t, filepath.Join(dir, "second"))] || s.count() != 4 {
		t.Fatal("create did not take a topped-up spare after the sync")
	}
}

// The background top-up stops when asked, leaving only named spares that the pool
// knows, and a pool that already holds enough gets none.
func TestSpareTopUpStops(t *testing.T) {
	sdir := filepath.Join(t.TempDir(), "s")
	if err := os.Mkdir(sdir, 0700); err != nil {
		t.Fatal(err)
	}
	s := openSpares(sdir, 0600, testCommits(t))
	quit := make(chan struct{})
	close(quit)
	if n := s.topUp(10, quit); n != 0 {
		t.Fatalf("a stopped topUp made %d", n)
	}
	stop := s.startTopUp(spareMax) // more than it can make before stop
	stop()
	ents, err := os.ReadDir(sdir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != s.count() {
		t.Fatalf("%d files in spare/s, %d spares known", len(ents), s.count())
	}
	for _, e := range ents {
		if _, ok := parseID(e.Name()); !ok {
			t.Errorf("left %s", e.Name())
		}
	}
	have := s.count()
	s.startTopUp(have)()
	if s.count() != have {
		t.Errorf("a full pool grew from %d to %d", have, s.count())
	}
}

// qmail-send tops spare/s up after its start while it delivers: a message queued at
// once is delivered without waiting for the top-up, and spare/s then holds
// spareLowWater spares, all named by their inodes.
func TestDaemonTopsUpSpares(t *testing.T) {
	old := spareLowWater
	t.Cleanup(func() { spareLowWater = old }) // after the daemon's stop
	spareLowWater = 300
	q := makeQueue(t)
	makeSpares(t, q, 0)
	h := startDaemon(t, q, 604800)
	id := enqueue(t, q, "joe@remote.example", "ok1@here.example")
	h.pull()
	waitFor(t, h, "delivery", func() bool { return gone(q, id) })
	sdir := filepath.Join(q.Dir, queue.SpareS)
	waitFor(t, h, "the top-up", func() bool {
		ents, _ := os.ReadDir(sdir)
		return len(ents) >= spareLowWater
	})
	// Stopped, qmail-send has ended the top-up: no temporary file is left.
	h.sigs <- syscall.SIGTERM
	select {
	case err := <-h.done:
		h.done <- err // for the cleanup's stop
	case <-time.After(20 * time.Second):
		t.Fatal("qmail-send did not exit")
	}
	ents, err := os.ReadDir(sdir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) < spareLowWater || len(ents) > spareLowWater+2 { // the message's info/ and local/ came back too
		t.Errorf("spare/s holds %d", len(ents))
	}
	for _, e := range ents {
		if _, ok := parseID(e.Name()); !ok {
			t.Errorf("spare/s holds %s", e.Name())
		}
	}
	if h.spawn[Local].count("ok1@here.example") != 1 {
		t.Error("not delivered once")
	}
}

// Ending the pool's use syncs when a spare was named after the last sync, since the
// next run takes the spares it finds as synced; with none such it does not sync.
func TestSpareStopSyncsNewNames(t *testing.T) {
	sdir := filepath.Join(t.TempDir(), "s")
	if err := os.Mkdir(sdir, 0700); err != nil {
		t.Fatal(err)
	}
	r := &syncRecorder{}
	recordSyncs(t, r)
	syncs := testCommits(t)
	s := openSpares(sdir, 0600, syncs)
	syncsSeen := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.names)
	}
	s.topUp(3, nil)
	if !s.unsynced() || syncsSeen() != 0 {
		t.Fatalf("after the top-up: unsynced %v, %d syncs", s.unsynced(), syncsSeen())
	}
	s.startTopUp(3)() // the pool is full: stop only syncs
	if s.count() != 3 || syncsSeen() != 1 || s.unsynced() {
		t.Fatalf("after the stop: %d spares, %d syncs, unsynced %v", s.count(), syncsSeen(), s.unsynced())
	}
	s.startTopUp(3)() // nothing new: no sync
	if syncsSeen() != 1 {
		t.Errorf("%d syncs after a stop with nothing new", syncsSeen())
	}
}

// The top-up makes no spare while the pool is in use: a create costs as much as the
// file it would save, so it waits for a quiet spell.
func TestSpareTopUpWaitsWhileUsed(t *testing.T) {
	old := topUpIdle
	t.Cleanup(func() { topUpIdle = old })
	topUpIdle = time.Hour
	dir := t.TempDir()
	sdir := filepath.Join(dir, "s")
	if err := os.Mkdir(sdir, 0700); err != nil {
		t.Fatal(err)
	}
	s := openSpares(sdir, 0600, testCommits(t))
	f, err := s.create(filepath.Join(dir, "info"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	quit := make(chan struct{})
	time.AfterFunc(200*time.Millisecond, func() { close(quit) })
	if n := s.topUp(10, quit); n != 0 || s.count() != 0 {
		t.Errorf("made %d spares (pool %d) right after a create", n, s.count())
	}
	topUpIdle = 0
	if n := s.topUp(10, nil); n != 10 {
		t.Errorf("made %d once idle, want 10", n)
	}
}

// scriptSyncer numbers its syncs as groupsync does and fails the next one when told:
// a writeback error reported to whichever sync came first.
type scriptSyncer struct {
	started  uint64
	lastFail uint64
	failNext bool
}

func (s *scriptSyncer) Mark() groupsync.Mark { return groupsync.Mark(s.started + 1) }
func (s *scriptSyncer) SyncSince(m groupsync.Mark) error {
	s.started++
	if s.failNext {
		s.failNext, s.lastFail = false, s.started
	}
	return s.FailedSince(m)
}
func (s *scriptSyncer) FailedSince(m groupsync.Mark) error {
	if s.lastFail != 0 && s.lastFail >= uint64(m) {
		return syscall.EIO
	}
	return nil
}
func (s *scriptSyncer) Close() error { return nil }

// A spare is not reused on a successful sync after its removal when a sync that ran
// since the removal began failed: that sync may have taken the writeback error of
// the removal, which the kernel reports only once, and the old name may still be on
// disk. (TestSpareReusedOnlyAfterRemovalSynced shows the same sequence without the
// failure reusing it.)
func TestSpareNotReusedAfterFailedSync(t *testing.T) {
	dir := t.TempDir()
	sdir, from := filepath.Join(dir, "s"), filepath.Join(dir, "local")
	os.Mkdir(sdir, 0700)
	os.Mkdir(from, 0700)
	sy := &scriptSyncer{}
	syncs := newCommits(sy)
	s := openSpares(sdir, 0600, syncs)
	old := filepath.Join(from, "5")
	os.WriteFile(old, []byte("Told@example.org\x00"), 0600)
	oldIno := inode(t, old)
	if err := s.remove(old); err != nil {
		t.Fatal(err)
	}
	// Another message's sync fails, then one succeeds: the removal's generation is
	// covered by number, but not by success.
	sy.failNext = true
	if err := syncs.sync(syncs.begin()); err == nil {
		t.Fatal("the scripted failure did not fail the sync")
	}
	if err := syncs.sync(syncs.begin()); err != nil {
		t.Fatal(err)
	}
	f, err := s.create(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if inode(t, filepath.Join(dir, "new")) == oldIno || s.count() != 1 {
		t.Fatal("a spare was reused although a sync since its removal failed")
	}
}

// While the file system has room, spare/s grows past spareMax up to spareBurst, so
// that a drain frees no blocks; in quiet spells it is trimmed back to spareMax,
// oldest first, spareTrimPerTick at a time, never taking a spare whose rename into
// spare/s no sync has covered yet.
func TestSparesBurstAndTrim(t *testing.T) {
	defer func(b, n int, d time.Duration) { spareBurst, spareTrimPerTick, topUpIdle = b, n, d }(
		spareBurst, spareTrimPerTick, topUpIdle)
	spareBurst, spareTrimPerTick = spareMax+10, 4
	dir, sdir, syncs, s := roomyPool(t)
	remove := func(i int) {
		t.Helper()
		p := filepath.Join(dir, fmt.Sprint("f", i))
		if err := os.WriteFile(p, []byte("data"), 0600); err != nil {
			t.Fatal(err)
		}
		if err := s.remove(p); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < spareMax+12; i++ {
		remove(i)
	}
	onDisk := func() int {
		names, err := os.ReadDir(sdir)
		if err != nil {
			t.Fatal(err)
		}
		return len(names)
	}
	if n := onDisk(); n != spareMax+10 || s.count() != spareMax+10 {
		t.Fatalf("%d spares on disk, %d known; want spareBurst = %d", n, s.count(), spareMax+10)
	}
	// None of the renames is synced yet: none may go.
	if n := s.trim(100); n != 0 {
		t.Errorf("trimmed %d spares whose renames are not on disk", n)
	}
	if err := syncs.sync(syncs.begin()); err != nil {
		t.Fatal(err)
	}
	oldest := s.queue[0].name
	if n := s.trim(3); n != 3 || onDisk() != spareMax+7 {
		t.Errorf("trim(3) removed %d, %d left on disk", n, onDisk())
	}
	if _, err := os.Stat(filepath.Join(sdir, oldest)); !os.IsNotExist(err) {
		t.Errorf("oldest spare %s not the first to go: %v", oldest, err)
	}
	// The loop does the rest in quiet spells, and stops at spareMax.
	topUpIdle = 10 * time.Millisecond
	stop := s.startTopUp(0)
	deadline := time.Now().Add(time.Minute)
	for s.count() > spareMax && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	stop()
	if n := onDisk(); n != spareMax || s.count() != spareMax {
		t.Errorf("%d spares on disk, %d known after quiet spells; want spareMax = %d", n, s.count(), spareMax)
	}
	// Short of room, no more past spareMax.
	s.room = func() bool { return false }
	remove(99999)
	if n := onDisk(); n != spareMax {
		t.Errorf("%d spares on disk without room, want %d", n, spareMax)
	}
}

// While the pool is in use, the trim loop leaves it alone, however far past spareMax
// it has grown.
func TestSparesNotTrimmedWhileUsed(t *testing.T) {
	defer func(b int, d time.Duration) { spareBurst, topUpIdle = b, d }(spareBurst, topUpIdle)
	spareBurst, topUpIdle = spareMax+5, time.Hour
	dir, _, syncs, s := roomyPool(t)
	for i := 0; i < spareMax+5; i++ {
		p := filepath.Join(dir, fmt.Sprint("f", i))
		if err := os.WriteFile(p, nil, 0600); err != nil {
			t.Fatal(err)
		}
		if err := s.remove(p); err != nil { // marks the pool used now
			t.Fatal(err)
		}
	}
	if err := syncs.sync(syncs.begin()); err != nil {
		t.Fatal(err)
	}
	if s.quiet() {
		t.Error("pool quiet right after use")
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() { s.trimLoop(quit); close(done) }()
	time.Sleep(100 * time.Millisecond)
	close(quit)
	<-done
	if s.count() != spareMax+5 {
		t.Errorf("%d spares left, want all %d: trimmed while in use", s.count(), spareMax+5)
	}
}

// roomyPool opens an empty pool in a temporary directory (dir/s) on a file system
// taken to have room.
func roomyPool(t *testing.T) (dir, sdir string, syncs *commits, s *spares) {
	t.Helper()
	dir = t.TempDir()
	sdir = filepath.Join(dir, "s")
	if err := os.Mkdir(sdir, 0700); err != nil {
		t.Fatal(err)
	}
	syncs = testCommits(t)
	s = openSpares(sdir, 0600, syncs)
	s.room = func() bool { return true }
	return dir, sdir, syncs, s
}
