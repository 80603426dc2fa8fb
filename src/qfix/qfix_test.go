package qfix

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/queue"
)

// deadPID is above Linux's largest pid_max, so no process ever has it.
const deadPID = 1 << 23

func selfOwners() queue.Owners {
	return queue.Owners{Qmailq: os.Geteuid(), Qmails: os.Geteuid(), Qmailr: os.Geteuid(), Qmail: os.Getegid()}
}

func newQueue(t *testing.T, split int) queue.Queue {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "queue")
	if err := queue.Create(dir, split, selfOwners()); err != nil {
		t.Fatal(err)
	}
	return queue.Open(dir)
}

// enqueue queues a message as qmail-queue does, written by process pid.
func enqueue(t *testing.T, q queue.Queue, pid int, rcpt string) uint64 {
	t.Helper()
	before := ids(t, q, "todo")
	err := queue.Enqueue(q, strings.NewReader("Subject: test\n\nbody\n"),
		strings.NewReader("Fsender@example.org\x00T"+rcpt+"\x00\x00"),
		queue.Caller{UID: os.Getuid(), PID: pid, Invoked: "by uid 0", Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for id := range ids(t, q, "todo") {
		if !before[id] {
			return id
		}
	}
	t.Fatal("enqueued message not found in todo/")
	return 0
}

func ids(t *testing.T, q queue.Queue, sub string) map[uint64]bool {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(q.Dir, sub))
	if err != nil {
		t.Fatal(err)
	}
	m := map[uint64]bool{}
	for _, e := range ents {
		if n, ok := number(e.Name()); ok {
			m[n] = true
		}
	}
	return m
}

// preprocess does what qmail-send and qmail-clean do with a new message.
func preprocess(t *testing.T, q queue.Queue, id uint64) {
	t.Helper()
	write(t, q.Path("info", id), "Fsender@example.org\x00")
	write(t, q.Path("remote", id), "Trcpt@example.net\x00")
	for _, sub := range []string{"todo", "intd"} {
		if err := os.Remove(q.Path(sub, id)); err != nil {
			t.Fatal(err)
		}
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0600); err != nil {
		t.Fatal(err)
	}
}

// lose removes a message file but keeps its inode in use, so that a later message in
// the same test cannot get its id.
func lose(t *testing.T, p string) {
	t.Helper()
	if err := os.Rename(p, filepath.Join(t.TempDir(), "lost")); err != nil {
		t.Fatal(err)
	}
}

func keepInode(t *testing.T, p string) {
	t.Helper()
	if err := os.Link(p, filepath.Join(t.TempDir(), "kept")); err != nil {
		t.Fatal(err)
	}
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func run(t *testing.T, q queue.Queue, fix bool, split int) Report {
	t.Helper()
	r, err := Run(Options{Dir: q.Dir, Fix: fix, Split: split, Owners: selfOwners(), CheckOwners: true})
	if err != nil {
		t.Fatalf("Run(fix=%v): %v", fix, err)
	}
	return r
}

func mustBeHealthy(t *testing.T, q queue.Queue) {
	t.Helper()
	if r := run(t, q, false, 0); len(r.Problems) > 0 {
		t.Fatalf("queue not healthy:\n%s", problems(r))
	}
}

func problems(r Report) string {
	var b strings.Builder
	for _, p := range r.Problems {
		fmt.Fprintln(&b, p)
	}
	return b.String()
}

func TestHealthyQueueIsHealthy(t *testing.T) {
	q := newQueue(t, queue.DefaultSplit)
	mustBeHealthy(t, q)
	a := enqueue(t, q, deadPID, "a@example.net") // queued, not yet preprocessed
	b := enqueue(t, q, deadPID, "b@example.net")
	preprocess(t, q, b)
	// A qmail-queue at work (this process): mess/ and intd/ without todo/.
	c := enqueue(t, q, os.Getpid(), "c@example.net")
	os.Remove(q.Path("todo", c))
	write(t, filepath.Join(q.Dir, "pid", fmt.Sprintf("%d.%d.1", os.Getpid(), time.Now().Unix())), "")
	r := run(t, q, false, 0)
	if len(r.Problems) > 0 {
		t.Fatalf("healthy queue with messages %d %d %d reported:\n%s", a, b, c, problems(r))
	}
	if r.Split != queue.DefaultSplit {
		t.Errorf("split %d", r.Split)
	}
	// -f on a healthy queue changes nothing.
	if r := run(t, q, true, 0); len(r.Problems) > 0 {
		t.Fatalf("fix found:\n%s", problems(r))
	}
	for _, p := range []string{q.Path("todo", a), q.Path("info", b), q.Path("mess", c), q.Path("intd", c)} {
		if !exists(p) {
			t.Errorf("%s vanished", p)
		}
	}
}

// breakage is one way to damage a queue, and what must hold once it is fixed.
type breakage struct {
	name string
	path string // a path (relative to the queue) the report must name
	brk  func(t *testing.T, q queue.Queue) (check func(t *testing.T, q queue.Queue))
}

func breakages() []breakage {
	return []breakage{
		{"missing split subdirectory", "local/7", func(t *testing.T, q queue.Queue) func(*testing.T, queue.Queue) {
			if err := os.Remove(filepath.Join(q.Dir, "local/7")); err != nil {
				t.Fatal(err)
			}
			return func(t *testing.T, q queue.Queue) {
				if fi, err := os.Stat(filepath.Join(q.Dir, "local/7")); err != nil || !fi.IsDir() {
					t.Error("local/7 not recreated")
				}
			}
		}},
		{"wrong directory mode", "todo", func(t *testing.T, q queue.Queue) func(*testing.T, queue.Queue) {
			os.Chmod(filepath.Join(q.Dir, "todo"), 0777)
			return func(t *testing.T, q queue.Queue) {
				if fi, _ := os.Stat(filepath.Join(q.Dir, "todo")); fi.Mode().Perm() != 0750 {
					t.Errorf("todo mode %v", fi.Mode())
				}
			}
		}},
		{"trigger is a regular file", "lock/trigger", func(t *testing.T, q queue.Queue) func(*testing.T, queue.Queue) {
			os.Remove(q.Trigger())
			write(t, q.Trigger(), "x")
			return func(t *testing.T, q queue.Queue) {
				if fi, err := os.Lstat(q.Trigger()); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
					t.Error("trigger is not a FIFO again")
				}
			}
		}},
		{"tcpto truncated", "lock/tcpto", func(t *testing.T, q queue.Queue) func(*testing.T, queue.Queue) {
			os.Truncate(filepath.Join(q.Dir, "lock/tcpto"), 100)
			return func(t *testing.T, q queue.Queue) {
				if fi, _ := os.Stat(filepath.Join(q.Dir, "lock/tcpto")); fi.Size() != queue.TcptoSize {
					t.Errorf("tcpto is %d bytes", fi.Size())
				}
			}
		}},
		{"sendmutex missing", "lock/sendmutex", func(t *testing.T, q queue.Queue) func(*testing.T, queue.Queue) {
			os.Remove(filepath.Join(q.Dir, "lock/sendmutex"))
			return func(t *testing.T, q queue.Queue) {
				if fi, err := os.Stat(filepath.Join(q.Dir, "lock/sendmutex")); err != nil || fi.Mode().Perm() != 0600 {
					t.Error("sendmutex not recreated 0600")
				}
			}
		}},
		{"pid file of a dead qmail-queue", "pid/", func(t *testing.T, q queue.Queue) func(*testing.T, queue.Queue) {
			p := filepath.Join(q.Dir, "pid", fmt.Sprintf("%d.1700000000.1", deadPID))
			write(t, p, "half a message")
			return func(t *testing.T, q queue.Queue) {
				if exists(p) {
					t.Error("pid file still there")
				}
			}
		}},
		{"mess without info or todo", "mess/", func(t *testing.T, q queue.Queue) func(*testing.T, queue.Queue) {
			id := enqueue(t, q, deadPID, "x@example.net")
			os.Remove(q.Path("todo", id))
			os.Remove(q.Path("intd", id))
			return func(t *testing.T, q queue.Queue) {
				if exists(q.Path("mess", id)) {
					t.Error("orphaned mess file still there")
				}
			}
		}},
		{"intd without todo", "intd/", func(t *testing.T, q queue.Queue) func(*testing.T, queue.Queue) {
			id := enqueue(t, q, deadPID, "x@example.net")
			os.Remove(q.Path("todo", id))
			return func(t *testing.T, q queue.Queue) {
				if exists(q.Path("mess", id)) || exists(q.Path("intd", id)) {
					t.Error("half-queued message still there")
				}
			}
		}},
		{"todo without mess", "todo/", func(t *testing.T, q queue.Queue) func(*testing.T, queue.Queue) {
			id := enqueue(t, q, deadPID, "x@example.net")
			lose(t, q.Path("mess", id))
			return func(t *testing.T, q queue.Queue) {
				if exists(q.Path("todo", id)) || exists(q.Path("intd", id)) {
					t.Error("todo of a lost message still there")
				}
			}
		}},
		{"info without mess", "info/", func(t *testing.T, q queue.Queue) func(*testing.T, queue.Queue) {
			id := enqueue(t, q, deadPID, "x@example.net")
			preprocess(t, q, id)
			lose(t, q.Path("mess", id))
			return func(t *testing.T, q queue.Queue) {
				if exists(q.Path("info", id)) || exists(q.Path("remote", id)) {
					t.Error("info/remote of a lost message still there")
				}
			}
		}},
		{"remote without info", "remote/", func(t *testing.T, q queue.Queue) func(*testing.T, queue.Queue) {
			write(t, q.Path("remote", 4242), "Tx@example.net\x00")
			write(t, q.Path("bounce", 4242), "x")
			return func(t *testing.T, q queue.Queue) {
				if exists(q.Path("remote", 4242)) || exists(q.Path("bounce", 4242)) {
					t.Error("leftovers still there")
				}
			}
		}},
		{"file in the wrong split subdirectory", "belongs in", func(t *testing.T, q queue.Queue) func(*testing.T, queue.Queue) {
			id := enqueue(t, q, deadPID, "x@example.net")
			preprocess(t, q, id)
			wrong := filepath.Join(q.Dir, "info", fmt.Sprint((id+1)%uint64(q.Split)), fmt.Sprint(id))
			if err := os.Rename(q.Path("info", id), wrong); err != nil {
				t.Fatal(err)
			}
			return func(t *testing.T, q queue.Queue) {
				if exists(wrong) || !exists(q.Path("info", id)) {
					t.Error("info file not moved back")
				}
			}
		}},
		{"message restored from a backup", "restored from a backup", func(t *testing.T, q queue.Queue) func(*testing.T, queue.Queue) {
			id := enqueue(t, q, deadPID, "x@example.net")
			preprocess(t, q, id)
			// A copy has a new inode: the message's name no longer matches it.
			old := q.Path("mess", id)
			data, _ := os.ReadFile(old)
			keepInode(t, old)
			tmp := filepath.Join(q.Dir, "pid", "copy")
			write(t, tmp, string(data))
			os.Rename(tmp, old)
			fi, _ := os.Stat(old)
			ino := fi.Sys().(*syscall.Stat_t).Ino
			return func(t *testing.T, q queue.Queue) {
				if exists(q.Path("info", id)) || exists(old) {
					t.Errorf("message %d still under its old name", id)
				}
				got, err := os.ReadFile(q.Path("mess", ino))
				if err != nil || string(got) != string(data) {
					t.Errorf("mess/%d: %v", ino, err)
				}
				if info, _ := os.ReadFile(q.Path("info", ino)); string(info) != "Fsender@example.org\x00" {
					t.Errorf("info/%d is %q", ino, info)
				}
				if !exists(q.Path("remote", ino)) {
					t.Errorf("remote/%d missing", ino)
				}
			}
		}},
	}
}

func TestEachBreakageReportedAndFixed(t *testing.T) {
	for _, b := range breakages() {
		t.Run(b.name, func(t *testing.T) {
			q := newQueue(t, queue.DefaultSplit)
			keep := enqueue(t, q, deadPID, "keep@example.net") // an innocent message
			keep2 := enqueue(t, q, deadPID, "keep2@example.net")
			preprocess(t, q, keep2)
			check := b.brk(t, q)

			r := run(t, q, false, 0)
			found := false
			for _, p := range r.Problems {
				if strings.Contains(p.Path, b.path) || strings.Contains(p.What, b.path) {
					found = true
				}
				if p.Fixed {
					t.Errorf("report mode fixed %v", p)
				}
			}
			if !found {
				t.Fatalf("%s not reported; report:\n%s", b.path, problems(r))
			}
			r = run(t, q, true, 0)
			if r.Unfixed() > 0 {
				t.Fatalf("not all fixed:\n%s", problems(r))
			}
			check(t, q)
			mustBeHealthy(t, q)
			for _, p := range []string{q.Path("todo", keep), q.Path("mess", keep), q.Path("info", keep2), q.Path("remote", keep2), q.Path("mess", keep2)} {
				if !exists(p) {
					t.Errorf("innocent %s removed", p)
				}
			}
		})
	}
}

func TestAllBreakagesAtOnce(t *testing.T) {
	q := newQueue(t, queue.DefaultSplit)
	var checks []func(*testing.T, queue.Queue)
	// Messages first: the layout breakages would stop them from being queued.
	bs := breakages()
	for i := len(bs) - 1; i >= 0; i-- {
		checks = append(checks, bs[i].brk(t, q))
	}
	r := run(t, q, false, 0)
	if len(r.Problems) < len(checks) {
		t.Errorf("%d problems for %d breakages:\n%s", len(r.Problems), len(checks), problems(r))
	}
	if r = run(t, q, true, 0); r.Unfixed() > 0 {
		t.Fatalf("not all fixed:\n%s", problems(r))
	}
	for _, c := range checks {
		c(t, q)
	}
	mustBeHealthy(t, q)
}

func TestWrongOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	o := queue.Owners{Qmailq: 101, Qmails: 102, Qmailr: 103, Qmail: 104}
	dir := filepath.Join(t.TempDir(), "queue")
	if err := queue.Create(dir, 5, o); err != nil {
		t.Fatal(err)
	}
	q := queue.Open(dir)
	os.Chown(filepath.Join(dir, "info/3"), 101, 104) // should be qmails
	write(t, q.Path("info", 3), "Fx\x00")            // as root; no mess: orphan too
	os.Lchown(q.Path("info", 3), 0, 0)
	opt := Options{Dir: dir, Owners: o, CheckOwners: true}
	r, err := Run(opt)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(problems(r), "info/3: owner is 101:104, should be 102:104") {
		t.Fatalf("owner not reported:\n%s", problems(r))
	}
	os.Remove(q.Path("info", 3))
	id := enqueue(t, q, deadPID, "x@example.net")
	preprocess(t, q, id) // files owned by root, as after a careless restore
	opt.Fix = true
	if r, err = Run(opt); err != nil || r.Unfixed() > 0 {
		t.Fatalf("%v\n%s", err, problems(r))
	}
	for p, uid := range map[string]uint32{"info/3": 102, q.Rel("info", id): 102, q.Rel("remote", id): 102, q.Rel("mess", id): 101} {
		fi, _ := os.Stat(filepath.Join(dir, p))
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != 104 {
			t.Errorf("%s is %d:%d", p, st.Uid, st.Gid)
		}
	}
}

func TestCreateFromNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "queue")
	r, err := Run(Options{Dir: dir, Owners: selfOwners()})
	if err != nil || len(r.Problems) != 1 || r.Unfixed() != 1 {
		t.Fatalf("missing queue: %v %v", err, r.Problems)
	}
	if r, err = Run(Options{Dir: dir, Fix: true, Split: 7, Owners: selfOwners()}); err != nil || r.Unfixed() > 0 {
		t.Fatalf("%v\n%s", err, problems(r))
	}
	q := queue.Open(dir)
	if q.Split != 7 {
		t.Errorf("split %d", q.Split)
	}
	enqueue(t, q, deadPID, "x@example.net")
	mustBeHealthy(t, q)
}

func TestMigrateSplit(t *testing.T) {
	q := newQueue(t, queue.DefaultSplit)
	var queued, done []uint64
	for i := 0; i < 40; i++ {
		id := enqueue(t, q, deadPID, fmt.Sprintf("r%d@example.net", i))
		if i%2 == 0 {
			preprocess(t, q, id)
			write(t, q.Path("local", id), "Tl@example.net\x00")
			done = append(done, id)
		} else {
			queued = append(queued, id)
		}
	}
	r := run(t, q, false, 7)
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0].What, "split count is 23, not 7") {
		t.Fatalf("report:\n%s", problems(r))
	}
	for _, split := range []int{7, 31, 1, queue.DefaultSplit} {
		if r := run(t, q, true, split); r.Unfixed() > 0 || r.Split != split {
			t.Fatalf("migrate to %d: split %d\n%s", split, r.Split, problems(r))
		}
		q = queue.Open(q.Dir)
		if q.Split != split {
			t.Fatalf("queue has split %d after migrating to %d", q.Split, split)
		}
		mustBeHealthy(t, q)
		for _, id := range done {
			for _, sub := range []string{"mess", "info", "local", "remote"} {
				if !exists(q.Path(sub, id)) {
					t.Errorf("split %d: %s missing", split, q.Rel(sub, id))
				}
			}
		}
		for _, id := range queued {
			if !exists(q.Path("mess", id)) || !exists(q.Path("todo", id)) {
				t.Errorf("split %d: message %d lost", split, id)
			}
		}
	}
}

// holdSendmutex stands in for a running qmail-send.
func holdSendmutex(t *testing.T, q queue.Queue) {
	f, err := os.OpenFile(filepath.Join(q.LockDir(), "sendmutex"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

func TestNoMessageFixesWhileSendRuns(t *testing.T) {
	q := newQueue(t, queue.DefaultSplit)
	id := enqueue(t, q, deadPID, "x@example.net")
	os.Remove(q.Path("mess", id)) // todo without mess
	os.Chmod(filepath.Join(q.Dir, "bounce"), 0755)
	holdSendmutex(t, q)

	if _, err := Run(Options{Dir: q.Dir, Fix: true, Split: 5, Owners: selfOwners()}); err != ErrSendRunning {
		t.Fatalf("split migration with qmail-send running: %v", err)
	}
	r := run(t, q, true, 0)
	var modeFixed, todoKept bool
	for _, p := range r.Problems {
		if p.Path == "bounce" && p.Fixed {
			modeFixed = true
		}
		if strings.HasPrefix(p.Path, "todo/") && !p.Fixed && p.Err == ErrSendRunning {
			todoKept = true
		}
	}
	if !modeFixed || !todoKept {
		t.Fatalf("want the layout fixed and the message left alone:\n%s", problems(r))
	}
	if !exists(q.Path("todo", id)) {
		t.Error("todo removed while qmail-send runs")
	}
}

func TestStrayEntriesReported(t *testing.T) {
	q := newQueue(t, 3)
	write(t, filepath.Join(q.Dir, "todo", "notes.txt"), "x")
	os.Mkdir(filepath.Join(q.Dir, "mess", "junk"), 0700)
	r := run(t, q, true, 0)
	s := problems(r)
	if r.Unfixed() != 2 || !strings.Contains(s, "todo/notes.txt: does not belong") || !strings.Contains(s, "mess/junk: does not belong") {
		t.Fatalf("report:\n%s", s)
	}
	if !exists(filepath.Join(q.Dir, "todo", "notes.txt")) {
		t.Error("stray file removed; it should be left for the admin")
	}
}

func TestPartlyHeldMessageLeftAlone(t *testing.T) {
	q := newQueue(t, queue.DefaultSplit)
	id := enqueue(t, q, deadPID, "x@example.net")
	preprocess(t, q, id)
	// qmail-qmaint hold moves info/ first; interrupted, the rest stays in the queue.
	hold := filepath.Join(q.Dir, "hold", fmt.Sprint(id))
	if err := os.MkdirAll(hold, 0700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(q.Path("info", id), filepath.Join(hold, "info")); err != nil {
		t.Fatal(err)
	}
	r := run(t, q, true, 0)
	if r.Unfixed() != 1 || !strings.Contains(problems(r), "partly held") {
		t.Fatalf("report:\n%s", problems(r))
	}
	if !exists(q.Path("mess", id)) || !exists(q.Path("remote", id)) {
		t.Error("qmail-qfix removed part of a message being held")
	}
}

// An intd/ file that qmail-queued has just made from a reused spare may still hold
// the old envelope, with a dead writer's pid, until its first write: the message's
// mess/ file, complete by then, names the live writer, and the files stay.
func TestIntdWithStalePidFromSpare(t *testing.T) {
	q := newQueue(t, queue.DefaultSplit)
	id := enqueue(t, q, os.Getpid(), "a@example.net")
	os.Remove(q.Path("todo", id))
	write(t, q.Path("intd", id), fmt.Sprintf("u0\x00p%d\x00Fold@example.org\x00Told@example.net\x00", deadPID))
	if r := run(t, q, true, 0); len(r.Problems) > 0 {
		t.Fatalf("a message being queued reported:\n%s", problems(r))
	}
	for _, p := range []string{q.Path("mess", id), q.Path("intd", id)} {
		if !exists(p) {
			t.Errorf("%s removed", p)
		}
	}
	// Both dead: a writer that is gone; its files go.
	enqueueDead := enqueue(t, q, deadPID, "b@example.net")
	os.Remove(q.Path("todo", enqueueDead))
	run(t, q, true, 0)
	if exists(q.Path("intd", enqueueDead)) || exists(q.Path("mess", enqueueDead)) {
		t.Errorf("files of a dead writer's message %d left", enqueueDead)
	}
}
