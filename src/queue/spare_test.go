package queue

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// makeSpare puts an empty, old, 0600 file into spare/q under its inode number.
func makeSpare(t *testing.T, q Queue) uint64 {
	t.Helper()
	tmp := filepath.Join(q.Dir, SpareQ, "new")
	if err := os.WriteFile(tmp, nil, 0600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-72 * time.Hour)
	if err := os.Chtimes(tmp, old, old); err != nil {
		t.Fatal(err)
	}
	ino := inode(t, tmp)
	if err := os.Rename(tmp, filepath.Join(q.Dir, SpareQ, strconv.FormatUint(ino, 10))); err != nil {
		t.Fatal(err)
	}
	return ino
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func spareNames(t *testing.T, q Queue) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(q.Dir, SpareQ))
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	return n
}

// makeFullSpare puts a spare holding old data into spare/q, as qmail-clean leaves a
// finished file there.
func makeFullSpare(t *testing.T, q Queue, data string) uint64 {
	t.Helper()
	ino := makeSpare(t, q)
	if err := os.WriteFile(filepath.Join(q.Dir, SpareQ, strconv.FormatUint(ino, 10)), []byte(data), 0600); err != nil {
		t.Fatal(err)
	}
	return ino
}

func TestEnqueueWithSpares(t *testing.T) {
	q := newQueue(t, 23)
	// Two spares holding old data: one longer than what it gets (cut to length), one
	// shorter (overwritten).
	oldMail := strings.Repeat("old mail, never to be seen again\n", 200)
	a, b := makeFullSpare(t, q, oldMail), makeFullSpare(t, q, "u1\x00")
	// Garbage that must never be used: a name that is not its inode, a directory, a
	// FIFO, a file with a second name.
	bogus := filepath.Join(q.Dir, SpareQ, "12345")
	os.WriteFile(bogus, []byte("bogus"), 0644)
	os.Mkdir(filepath.Join(q.Dir, SpareQ, "777"), 0700)
	fifo := filepath.Join(q.Dir, SpareQ, "fifo")
	if err := syscall.Mkfifo(fifo, 0600); err != nil {
		t.Fatal(err)
	}
	os.Rename(fifo, filepath.Join(q.Dir, SpareQ, strconv.FormatUint(inode(t, fifo), 10)))
	linked := filepath.Join(q.Dir, "linked")
	os.WriteFile(linked, []byte("another file's data"), 0644)
	linkedSpare := filepath.Join(q.Dir, SpareQ, strconv.FormatUint(inode(t, linked), 10))
	os.Link(linked, linkedSpare)

	before := time.Now().Add(-time.Second)
	err := EnqueueWith(q, strings.NewReader("Subject: x\n\nhi\n"), strings.NewReader(testEnv), testCaller,
		Options{Spares: NewSpares(q), PidName: "svc.1"})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := q.Todo()
	if err != nil || len(ids) != 1 {
		t.Fatalf("todo: %v %v", ids, err)
	}
	id := ids[0]
	if id != a && id != b {
		t.Fatalf("message id %d is not one of the spares %d, %d", id, a, b)
	}
	messfn := q.Path("mess", id)
	if ino := inode(t, messfn); ino != id {
		t.Errorf("mess/ inode %d, id %d", ino, id)
	}
	want := "Received: (qmail 4242 invoked by uid 7); 5 Jan 2026 01:02:03 -0000\nSubject: x\n\nhi\n"
	if mess, _ := os.ReadFile(messfn); string(mess) != want {
		t.Errorf("mess = %q, want %q", mess, want)
	}
	if todo, _ := os.ReadFile(q.Path("todo", id)); string(todo) != "u7\x00p4242\x00"+testEnv[:len(testEnv)-1] {
		t.Errorf("todo = %q, want %q", todo, "u7\x00p4242\x00"+testEnv[:len(testEnv)-1])
	}
	for _, p := range []string{messfn, q.Path("intd", id)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0644 {
			t.Errorf("%s mode %v, want 0644", p, fi.Mode())
		}
		if at := time.Unix(st.Atim.Sec, st.Atim.Nsec); at.Before(before) || fi.ModTime().Before(before) {
			t.Errorf("%s atime %v mtime %v: not renewed", p, at, fi.ModTime())
		}
	}
	// intd/ is the other spare; both spares are used and nothing went through pid/.
	if ino := inode(t, q.Path("intd", id)); ino != a+b-id {
		t.Errorf("intd inode %d, want the spare %d", ino, a+b-id)
	}
	for _, n := range spareNames(t, q) {
		if n == strconv.FormatUint(a, 10) || n == strconv.FormatUint(b, 10) {
			t.Errorf("spare %s still in spare/q", n)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(q.Dir, "pid")); len(ents) != 0 {
		t.Errorf("pid/ not empty: %v", ents)
	}

	// A spare named by the queued message's id (not its inode: that is the message)
	// must not replace the message's file.
	intruder := filepath.Join(q.Dir, "intruder")
	os.WriteFile(intruder, []byte("intruder"), 0644)
	os.Rename(intruder, filepath.Join(q.Dir, SpareQ, strconv.FormatUint(id, 10)))

	// With no usable spare left, files are created as Enqueue does.
	for i := range 2 {
		if err := EnqueueWith(q, strings.NewReader("two\n"), strings.NewReader(testEnv), testCaller,
			Options{Spares: NewSpares(q), PidName: "svc." + strconv.Itoa(i+2)}); err != nil {
			t.Fatal(err)
		}
	}
	ids, _ = q.Todo()
	if len(ids) != 3 {
		t.Fatalf("todo: %v", ids)
	}
	if mess, _ := os.ReadFile(messfn); string(mess) != want {
		t.Errorf("after the intruder, mess/%d = %q, want %q", id, mess, want)
	}
	// No message holds a bad spare's data. (A bad spare's inode number may come back,
	// once unlinked, for a newly created file.)
	for _, id := range ids {
		for _, sub := range []string{"mess", "todo"} {
			b, err := os.ReadFile(q.Path(sub, id))
			if err != nil {
				t.Fatal(err)
			}
			if s := string(b); strings.Contains(s, "old mail") || strings.Contains(s, "bogus") ||
				strings.Contains(s, "intruder") || strings.Contains(s, "another file") {
				t.Errorf("%s of message %d holds a spare's old data: %q", sub, id, b)
			}
		}
	}
	if b, _ := os.ReadFile(linked); string(b) != "another file's data" {
		t.Errorf("the spare with a second name was changed: %q", b)
	}
	// Looking for a spare went past the garbage, which is unlinked; the queue holds
	// only the three messages.
	if n := spareNames(t, q); len(n) != 0 {
		t.Errorf("spare/q left: %v", n)
	}
	if f := files(t, q); len(f) != 10 {
		t.Errorf("queue files: %v, want 3 each in mess/, intd/ and todo/, and linked", f)
	}
}

func TestEnqueueWithSparesFailureLeavesNothing(t *testing.T) {
	q := newQueue(t, 23)
	makeSpare(t, q)
	makeSpare(t, q)
	err := EnqueueWith(q, strings.NewReader("partial"), strings.NewReader("Fa\x00Tb\x00"), testCaller,
		Options{Spares: NewSpares(q), PidName: "svc.1"})
	if Code(err) != ExitRead {
		t.Fatalf("err %v, want exit %d", err, ExitRead)
	}
	// The envelope's spare is taken at its first write, which never came: it is
	// still a spare.
	for _, f := range files(t, q) {
		if !strings.HasPrefix(f, SpareQ+"/") {
			t.Errorf("left behind: %s", f)
		}
	}
}

// noRoom stands for a file system short of room: a pool keeps only Max spares.
func noRoom() bool { return false }

func TestRecycler(t *testing.T) {
	q := newQueue(t, 23)
	r := &Recycler{Q: q, Max: 3, Room: noRoom}
	var made []uint64
	for i := 0; i < 5; i++ {
		p := filepath.Join(q.Dir, "mess", "0", "m"+strconv.Itoa(i))
		if err := os.WriteFile(p, []byte("secret mail"), 0644); err != nil {
			t.Fatal(err)
		}
		made = append(made, inode(t, p))
		if err := r.Recycle(p); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s still there", p)
		}
	}
	// Moved aside with their contents until two Flushes have passed, past Max too:
	// unlinking frees blocks (a wait for the device under -o discard), which Flush
	// does, not the request.
	names := spareNames(t, q)
	if len(names) != 5 {
		t.Fatalf("spare/q = %v, want all 5 of %v moved aside", names, made)
	}
	for _, n := range names {
		if b, _ := os.ReadFile(filepath.Join(q.Dir, SpareQ, n)); n[0] != '.' || string(b) != "secret mail" {
			t.Errorf("%s: %q before Flush", n, b)
		}
	}
	r.Flush()
	if n := spareNames(t, q); n[0][0] != '.' {
		t.Errorf("spares after one Flush: %v", n)
	}
	r.Flush()
	// Spares now, named by their inodes, still holding their data: a writer
	// overwrites and trims them. Only Max of them: the rest are gone.
	names = spareNames(t, q)
	if len(names) != 3 {
		t.Fatalf("spare/q after two Flushes = %v, want 3", names)
	}
	for _, n := range names {
		p := filepath.Join(q.Dir, SpareQ, n)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != "secret mail" || strconv.FormatUint(inode(t, p), 10) != n {
			t.Errorf("spare %s: %q, inode %d", n, b, inode(t, p))
		}
	}
	// A file with two names (intd/ and todo/) is never truncated: only the name goes.
	intd, todo := filepath.Join(q.Dir, "intd", "9"), filepath.Join(q.Dir, "todo", "9")
	os.WriteFile(intd, []byte("u1\x00"), 0644)
	os.Link(intd, todo)
	r2 := &Recycler{Q: q}
	if err := r2.Recycle(intd); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(todo); string(b) != "u1\x00" {
		t.Errorf("todo/ after recycling intd/: %q", b)
	}
	if err := r2.Recycle(filepath.Join(q.Dir, "intd", "missing")); err != nil {
		t.Errorf("missing file: %v", err)
	}
	// A file moved aside that gained a second name meanwhile (a crash before the
	// removal of its old name was on disk, repaired by fsck) is never written: the
	// writer that takes it sees the second name and unlinks the spare's.
	for _, n := range spareNames(t, q) {
		os.Remove(filepath.Join(q.Dir, SpareQ, n))
	}
	p := filepath.Join(q.Dir, "mess", "1", "x")
	os.WriteFile(p, []byte("mail"), 0644)
	r2.Recycle(p)
	aside := filepath.Join(q.Dir, SpareQ, "."+strconv.FormatUint(lastIno(t, q), 10))
	os.Link(aside, p)
	r2.Flush()
	r2.Flush()
	if err := EnqueueWith(q, strings.NewReader("new\n"), strings.NewReader(testEnv), testCaller,
		Options{Spares: NewSpares(q), PidName: "svc.1"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "mail" {
		t.Errorf("a file with another name was written: %q", b)
	}
	if _, err := os.Lstat(aside); err == nil {
		t.Errorf("%s still there", aside)
	}
	if n := spareNames(t, q); len(n) != 0 {
		t.Errorf("spare/q after a message took the spares: %v", n)
	}
	// A restarted Recycler finds the files moved aside by its predecessor.
	p = filepath.Join(q.Dir, "mess", "1", "y")
	os.WriteFile(p, []byte("mail"), 0644)
	ino := inode(t, p)
	(&Recycler{Q: q}).Recycle(p)
	r3 := &Recycler{Q: q}
	r3.Recover()
	r3.Flush()
	if b, err := os.ReadFile(filepath.Join(q.Dir, SpareQ, strconv.FormatUint(ino, 10))); err != nil || string(b) != "mail" {
		t.Errorf("recovered spare: %q %v", b, err)
	}
	// Files that are not moved-aside queue files (an interrupted TopUp's) go.
	junk := filepath.Join(q.Dir, SpareQ, ".new.1.2")
	os.WriteFile(junk, nil, 0644)
	r4 := &Recycler{Q: q}
	r4.Recover()
	r4.Flush()
	if n := spareNames(t, q); len(n) != 1 || n[0] != strconv.FormatUint(ino, 10) {
		t.Errorf("spare/q after recovering .new.1.2: %v", n)
	}
}

// lastIno returns the inode number of the only name in spare/q that starts with a dot.
func lastIno(t *testing.T, q Queue) uint64 {
	t.Helper()
	for _, n := range spareNames(t, q) {
		if n[0] == '.' {
			v, _ := strconv.ParseUint(n[1:], 10, 64)
			return v
		}
	}
	t.Fatal("nothing moved aside")
	return 0
}

// BenchmarkEnqueueCycle4K queues a 4 KiB message and then removes its files as
// qmail-clean does, in steady state: with spares (inodes reused through spare/q)
// and without (created and unlinked each time).
func BenchmarkEnqueueCycle4K(b *testing.B) {
	for _, spares := range []bool{true, false} {
		b.Run("spares="+strconv.FormatBool(spares), func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "queue")
			if err := Create(dir, DefaultSplit, Owners{Qmailq: os.Geteuid(), Qmails: os.Geteuid(), Qmailr: os.Geteuid(), Qmail: os.Getegid()}); err != nil {
				b.Fatal(err)
			}
			q := Open(dir)
			msg := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", 64)
			o := Options{PidName: "bench"}
			rec := &Recycler{Q: q}
			if spares {
				o.Spares = NewSpares(q)
			}
			cpu0 := cpuTime()
			for i := 0; b.Loop(); i++ {
				c := testCaller
				c.Time = time.Now()
				if err := EnqueueWith(q, strings.NewReader(msg), strings.NewReader(testEnv), c, o); err != nil {
					b.Fatal(err)
				}
				if spares && i%100 == 99 {
					rec.Flush() // as qmail-clean does every second
				}
				ids, _ := q.Todo()
				for _, id := range ids {
					os.Remove(q.Path("todo", id))
					for _, sub := range []string{"intd", "mess"} {
						if spares {
							rec.Recycle(q.Path(sub, id))
						} else {
							os.Remove(q.Path(sub, id))
						}
					}
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
		})
	}
}

// TopUp fills spare/q with empty spares named by their inodes, up to the low mark
// and at most max per call, and waits while files moved aside are pending; what it
// makes is taken by the next message.
func TestTopUp(t *testing.T) {
	q := newQueue(t, 23)
	r := &Recycler{Q: q}
	if n := r.TopUp(10, 4); n != 4 {
		t.Fatalf("first TopUp made %d, want 4 (its max)", n)
	}
	if n := r.TopUp(10, 100); n != 6 {
		t.Fatalf("second TopUp made %d, want 6 (up to the low mark)", n)
	}
	if n := r.TopUp(10, 100); n != 0 {
		t.Fatalf("TopUp at the low mark made %d", n)
	}
	names := spareNames(t, q)
	if len(names) != 10 {
		t.Fatalf("spare/q: %v", names)
	}
	for _, n := range names {
		p := filepath.Join(q.Dir, SpareQ, n)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if strconv.FormatUint(inode(t, p), 10) != n || fi.Size() != 0 || fi.Mode().Perm() != 0644 {
			t.Errorf("spare %s: inode %d, size %d, mode %v", n, inode(t, p), fi.Size(), fi.Mode())
		}
	}
	// A file moved aside, not yet flushed: no top-up meanwhile.
	mess := filepath.Join(q.Dir, "mess", "0", "x")
	if err := os.WriteFile(mess, []byte("mail"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Recycle(mess); err != nil {
		t.Fatal(err)
	}
	if n := r.TopUp(100, 100); n != 0 {
		t.Fatalf("TopUp with a file pending made %d", n)
	}
	// The next message is made of two of them.
	if err := EnqueueWith(q, strings.NewReader("hi\n"), strings.NewReader(testEnv), testCaller,
		Options{Spares: NewSpares(q), PidName: "svc.1"}); err != nil {
		t.Fatal(err)
	}
	ids, _ := q.Todo()
	if len(ids) != 1 {
		t.Fatalf("todo: %v", ids)
	}
	found := false
	for _, n := range names {
		if n == strconv.FormatUint(ids[0], 10) {
			found = true
		}
	}
	if !found {
		t.Errorf("message %d was not made from a topped-up spare %v", ids[0], names)
	}
}

// Files moved aside wait for Flush, up to twice Max; past that, while Flush falls
// behind, Recycle unlinks the name itself. Either way the name leaves the queue.
func TestRecyclerBoundsFilesAside(t *testing.T) {
	q := newQueue(t, 23)
	r := &Recycler{Q: q, Max: 3, Room: noRoom}
	for i := 0; i < 8; i++ {
		p := filepath.Join(q.Dir, "mess", "0", "m"+strconv.Itoa(i))
		if err := os.WriteFile(p, []byte("mail"), 0644); err != nil {
			t.Fatal(err)
		}
		if err := r.Recycle(p); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s still there", p)
		}
	}
	if names := spareNames(t, q); len(names) != 6 {
		t.Fatalf("spare/q = %v, want 6 files moved aside (twice Max)", names)
	}
	flushTwice(t, r, q, 3)
}

// flushTwice runs two Flushes, after which spare/q must hold want spares and nothing
// moved aside.
func flushTwice(t *testing.T, r *Recycler, q Queue, want int) {
	t.Helper()
	r.Flush()
	r.Flush()
	names := spareNames(t, q)
	if len(names) != want {
		t.Fatalf("spare/q after two Flushes = %v, want %d", names, want)
	}
	for _, n := range names {
		if n[0] == '.' {
			t.Errorf("%s still aside", n)
		}
	}
}

// While the file system has room, spare/q grows past Max up to Burst, so that a drain
// frees no blocks; Trim gives the excess back later, a batch at a time, and leaves
// what is still moved aside alone.
func TestRecyclerBurstAndTrim(t *testing.T) {
	q := newQueue(t, 23)
	room := true
	r := &Recycler{Q: q, Max: 3, Burst: 7, Room: func() bool { return room }}
	recycle := func(i int) {
		t.Helper()
		p := filepath.Join(q.Dir, "mess", "0", "m"+strconv.Itoa(i))
		if err := os.WriteFile(p, []byte("mail"), 0644); err != nil {
			t.Fatal(err)
		}
		if err := r.Recycle(p); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 9; i++ {
		recycle(i)
	}
	if n := r.Trim(100, nil); n != 0 {
		t.Errorf("Trim removed %d spares while files wait for a Flush", n)
	}
	flushTwice(t, r, q, 7) // Burst
	if n := r.Trim(2, nil); n != 2 || len(spareNames(t, q)) != 5 {
		t.Errorf("Trim(2) removed %d, spare/q now %v", n, spareNames(t, q))
	}
	// Mail again after one unlink: Trim stops there.
	calls := 0
	if n := r.Trim(100, func() bool { calls++; return calls == 1 }); n != 1 || len(spareNames(t, q)) != 4 {
		t.Errorf("Trim with mail coming back removed %d, spare/q now %v", n, spareNames(t, q))
	}
	if n := r.Trim(100, nil); n != 1 || len(spareNames(t, q)) != 3 {
		t.Errorf("Trim(100) removed %d, spare/q now %v, want Max = 3 left", n, spareNames(t, q))
	}
	if n := r.Trim(100, nil); n != 0 {
		t.Errorf("Trim at Max removed %d", n)
	}
	// Short of room, the pool takes no more than Max: the files past it go at Flush.
	room = false
	for i := 10; i < 14; i++ {
		recycle(i)
	}
	r.Flush()
	r.Flush()
	if names := spareNames(t, q); len(names) != 3 {
		t.Errorf("spare/q without room = %v, want Max = 3", names)
	}
}

func TestSpareRoom(t *testing.T) {
	for _, c := range []struct {
		st   syscall.Statfs_t
		want bool
	}{
		{syscall.Statfs_t{Blocks: 1000, Bavail: 100, Files: 1000, Ffree: 100}, true},
		{syscall.Statfs_t{Blocks: 1000, Bavail: 99, Files: 1000, Ffree: 900}, false},
		{syscall.Statfs_t{Blocks: 1000, Bavail: 900, Files: 1000, Ffree: 99}, false},
		{syscall.Statfs_t{Blocks: 1000, Bavail: 900}, true}, // no inode count: btrfs
		{syscall.Statfs_t{}, false},
	} {
		calls := 0
		st := c.st
		r := &SpareRoom{Dir: "/x", statfs: func(dir string, out *syscall.Statfs_t) error {
			calls++
			*out = st
			return nil
		}}
		if got := r.OK(); got != c.want {
			t.Errorf("%+v: OK = %v, want %v", c.st, got, c.want)
		}
		if r.OK(); calls != 1 {
			t.Errorf("%d statfs calls within a second, want 1", calls)
		}
	}
	r := &SpareRoom{Dir: "/x", statfs: func(string, *syscall.Statfs_t) error { return syscall.EIO }}
	if r.OK() {
		t.Error("room when statfs fails")
	}
	if !(&SpareRoom{Dir: t.TempDir()}).OK() {
		t.Log("the test machine's temporary directory is short of room") // not the code's fault
	}
}
