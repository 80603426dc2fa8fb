package durability

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/queueclient"
	"github.com/notqmail/notqmail/src/queued"
	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/testpeer"
)

// guard bounds every wait on the traced MTA, so a broken MTA fails the test instead
// of hanging it; it is a deadlock guard, not a speed expectation.
const guard = 3 * time.Minute

// tracedMTA is qmail-start with all its daemons and deliveries under strace -f.
type tracedMTA struct {
	t      *testing.T
	log    *sandbox.Log
	cmd    *exec.Cmd
	done   chan struct{}
	tr     *traced
	waited error
}

// startTracedMTA runs "strace -f ... qmail-start ./Maildir/" in the home, in a
// process group of its own.
func startTracedMTA(t *testing.T, h *sandbox.Home, extra []string) *tracedMTA {
	t.Helper()
	tr := &traced{t: t, file: filepath.Join(t.TempDir(), "trace")}
	argv := straceArgs(t, tr.file, extra, filepath.Join(h.Bin, "qmail-start"), "./Maildir/")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = h.Env(), h.Dir
	log := &sandbox.Log{}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &tracedMTA{t: t, log: log, cmd: cmd, done: make(chan struct{}), tr: tr}
	go func() { m.waited = cmd.Wait(); close(m.done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-m.done
	})
	return m
}

// stop sends SIGTERM to qmail-start (strace's child), which has qmail-send finish
// and exit, and waits for strace to end with its trace complete.
func (m *tracedMTA) stop() {
	m.t.Helper()
	pid := childNamed(m.cmd.Process.Pid, "qmail-start")
	if pid == 0 {
		m.t.Fatalf("no qmail-start under strace (pid %d)", m.cmd.Process.Pid)
	}
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(guard):
		syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.done
		m.t.Fatalf("the MTA did not stop within %v", guard)
	}
}

// childNamed returns the pid of ppid's child with command name name, or 0.
func childNamed(ppid int, name string) int {
	for _, c := range sandbox.ChildProcs(ppid) {
		if c.Name == name {
			return c.PID
		}
	}
	return 0
}

// waitQueued waits until qmail-queued (started by qmail-start) listens, so that
// messages go through it rather than through an exec'ed qmail-queue.
func waitQueued(t *testing.T, h *sandbox.Home) {
	t.Helper()
	sock := queued.SocketPath(h.Dir)
	waitFor(t, "qmail-queued's socket "+sock, func() bool {
		c, err := net.Dial("unix", sock)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// waitFor polls cond until it holds, failing the test after guard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(guard); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", guard, what)
		}
	}
}

// TestSendAndDeliveryFsyncOrder traces a whole MTA (qmail-start, qmail-send,
// qmail-clean, qmail-lspawn and the deliveries it starts) while one message is
// preprocessed and delivered to a Maildir, and checks:
//   - preprocessing: info/ and local/ are fsynced after their last write, and their
//     directories after that, before todo/ is removed (by whichever process does it);
//   - delivery: the Maildir's tmp/ file is fsynced before it is linked into new/, and
//     new/ is fsynced before qmail-send hears of the success, which it records by
//     marking the recipient done (D) in local/.
func TestSendAndDeliveryFsyncOrder(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	q := h.Queue()
	q.Dir = realDir(t, q.Dir)
	m := startTracedMTA(t, h, nil)
	waitQueued(t, h)
	msg := "Subject: traced through the MTA\n\nbody\n"
	if err := h.Submit(strings.NewReader(msg), "bob@far.example", []string{"alice@" + h.Domain}); err != nil {
		t.Fatal(err)
	}
	h.WaitMessages(t, "alice", 1)
	waitFor(t, "an empty queue", h.QueueEmpty)
	m.stop()
	tr := m.tr
	ev := tr.load()

	if os.Getenv("DURABILITY_DUMP") != "" {
		t.Logf("trace:\n%s", tr.dump())
	}
	// Queueing, by qmail-queued: the same order as qmail-queue's, before the reply
	// byte 0 (qmail-queue's exit code) goes back on the client's connection.
	qid, link := queuedID(t, tr, q.Dir)
	reply := find(ev, link.Seq, func(e Event) bool {
		return e.Call == "write" && e.OK() && strings.Contains(e.Args, "socket:[") && (e.Data() == "\x00" || e.Data() == "\x00Q")
	})
	if reply == nil {
		t.Errorf("qmail-queued sent no success reply after linking %d into todo/", qid)
	} else {
		checkEnqueueOrder(t, tr, q, qid, link, reply.Seq)
	}

	todoDir := filepath.Join(q.Dir, "todo")
	unlink := find(ev, 0, func(e Event) bool {
		p := e.Paths(q.Dir)
		return (e.Call == "unlink" || e.Call == "unlinkat") && e.OK() && len(p) == 1 && filepath.Dir(p[0]) == todoDir
	})
	if unlink == nil {
		t.Fatalf("todo/ entry never removed:\n%s", tr.dump())
	}
	id, err := strconv.ParseUint(filepath.Base(unlink.Paths(q.Dir)[0]), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	info, local := q.Path("info", id), q.Path("local", id)
	syncedBetween(t, ev, q.Dir, info, unlink.Seq, "info")
	syncedBetween(t, ev, q.Dir, local, unlink.Seq, "local")
	dirSyncedBetween(t, ev, filepath.Dir(info), -1, unlink.Seq, "info/ entry")
	dirSyncedBetween(t, ev, filepath.Dir(local), -1, unlink.Seq, "local/ entry")

	// qmail-send marks the recipient done: a write of "D" into local/<id>.
	done := find(ev, unlink.Seq, func(e Event) bool {
		return (e.Call == "pwrite64" || e.Call == "write") && e.OK() && e.FDPath() == local && e.Data() == "D"
	})
	if done == nil {
		t.Fatalf("the recipient was never marked done in %s:\n%s", local, tr.dump())
	}
	md := realDir(t, h.Maildir("alice"))
	checkMaildirOrder(t, tr, realDir(t, h.UserHome("alice")), md, 0, done.Seq)
	// The report ("did 1+0+0"), from an exec'ed qmail-local or from a worker, also
	// comes after the sync: qmail-lspawn passes it on as the delivery's success.
	report := successWrite(ev)
	if report == nil || report.Seq > done.Seq {
		t.Errorf("no success report before the recipient was marked done")
	} else {
		checkMaildirOrder(t, tr, realDir(t, h.UserHome("alice")), md, 0, report.Seq)
	}
	// qmail-lspawn's report to qmail-send: the delivery's number, K (success) and
	// the report, as qmail's spawn protocol has it.
	lspawnK := find(ev, 0, func(e Event) bool {
		d := e.Data()
		return e.Call == "write" && e.OK() && len(d) > 2 && d[1] == 'K' && strings.Contains(d, "did ")
	})
	if lspawnK == nil || lspawnK.Seq > done.Seq {
		t.Errorf("no success report (K) from qmail-lspawn before the recipient was marked done")
	} else {
		checkMaildirOrder(t, tr, realDir(t, h.UserHome("alice")), md, 0, lspawnK.Seq)
	}
	if worker := find(ev, 0, func(e Event) bool { return e.Call == "execve" && strings.Contains(e.Args, `"--worker"`) }); worker != nil {
		t.Logf("delivered by a qmail-local worker: %s", worker.Line)
	} else {
		t.Logf("delivered by an exec'ed qmail-local")
	}
	if t.Failed() {
		t.Logf("trace:\n%s", tr.dump())
	}
}

// deliverTraced runs a traced MTA until one message to alice is delivered and the
// queue is empty, and returns the trace.
func deliverTraced(t *testing.T, h *sandbox.Home) *traced {
	t.Helper()
	m := startTracedMTA(t, h, nil)
	if err := h.Submit(strings.NewReader("Subject: traced\n\nbody\n"), "bob@far.example", []string{"alice@" + h.Domain}); err != nil {
		t.Fatal(err)
	}
	h.WaitMessages(t, "alice", 1)
	waitFor(t, "an empty queue", h.QueueEmpty)
	// qmail-clean recycles finished files a while later (spare/q/.<inode> until their
	// removal is on disk, then emptied to spare/q/<inode>): wait for that too.
	waitFor(t, "finished files recycled", func() bool {
		ents, err := os.ReadDir(filepath.Join(h.Dir, "queue", "spare", "q"))
		if err != nil {
			return false
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				return false
			}
		}
		return len(ents) > 0
	})
	m.stop()
	m.tr.load()
	return m.tr
}

// TestRecyclingWaitsForDurableRemoval checks that qmail-clean's reuse of finished
// files (spare/q) waits until their removal is on disk, on a file system that does not
// order metadata updates (ext4 without a journal):
//   - the envelope file (intd/<id>, todo/<id> under another name) is not emptied or
//     rewritten until the unlink of todo/<id> is on disk (todo/ fsynced in between):
//     a todo/ entry that came back empty after a crash would be preprocessed again and
//     replace the message's info/ and local/ files with empty ones, losing its
//     recipients;
//   - the mess/ file, whose inode number is the id of the next message made from it,
//     is not emptied until the removals of its info/ and local/ files are on disk
//     (checkIDReuse).
func TestRecyclingWaitsForDurableRemoval(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	q := h.Queue()
	q.Dir = realDir(t, q.Dir)
	tr := deliverTraced(t, h)
	ev := tr.events
	todoDir := filepath.Join(q.Dir, "todo")
	unlink := find(ev, 0, func(e Event) bool {
		p := e.Paths(q.Dir)
		return (e.Call == "unlink" || e.Call == "unlinkat") && e.OK() && len(p) == 1 && filepath.Dir(p[0]) == todoDir
	})
	if unlink == nil {
		t.Fatalf("todo/ entry never removed:\n%s", tr.dump())
	}
	todo := unlink.Paths(q.Dir)[0]
	names := map[string]bool{}
	for n := range Names(ev, q.Dir, todo, unlink.Seq) {
		names[n] = true
	}
	// qmail-queue, which may have queued the message untraced, linked intd/<id> to
	// todo/<id>: one file.
	names[filepath.Join(q.Dir, "intd", filepath.Base(todo))] = true
	// The envelope's other names after the unlink: renames of intd/<id> (into spare/q).
	for _, e := range ev[unlink.Seq:] {
		if p := e.Paths(q.Dir); IsLink(e) && e.OK() && len(p) == 2 && names[p[0]] {
			names[p[1]] = true
		}
	}
	destroy := reusable(ev, q, names, unlink.Seq)
	if destroy == nil {
		// Only unlinked, as qmail does: its data stays until it has no name.
		if find(ev, unlink.Seq+1, func(e Event) bool {
			p := e.Paths(q.Dir)
			return (e.Call == "unlink" || e.Call == "unlinkat") && e.OK() && len(p) == 1 && names[p[0]]
		}) == nil {
			t.Errorf("the envelope of %s was neither emptied nor removed in the trace:\n%s", todo, tr.dump())
		}
		return
	}
	checkIDReuse(t, tr, q, todo)
	if seq, err := DirSyncedBetween(ev, todoDir, unlink.Seq, destroy.Seq); err == nil {
		t.Logf("todo/%s removed at #%d, synced at #%d (%s), made reusable at #%d",
			filepath.Base(todo), unlink.Seq, seq, ev[seq].Call, destroy.Seq)
	} else {
		t.Errorf("the envelope of %s is changed or made a spare (#%d: %s) before its removal from todo/ (#%d) is on disk: %v",
			todo, destroy.Seq, destroy.Line, unlink.Seq, err)
	}
}

// TestDeliveryFsyncFailureDefers runs a whole MTA under strace with every fsync of the
// Maildir's new/ failing, and every syncfs through it (a worker's group commit), so that no delivery there can be made durable, and checks
// that qmail-lspawn reports a temporary failure (qmail-send logs a deferral, never a
// success), that no message is left in new/ or tmp/, and that the message stays
// queued for a retry.
func TestDeliveryFsyncFailureDefers(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	md := realDir(t, h.Maildir("alice"))
	// A qmail-local worker makes the delivery durable with syncfs calls on a
	// descriptor of new/ (maildir.GroupSync); an exec'ed one fsyncs new/.
	m := startTracedMTA(t, h, []string{"-P", filepath.Join(md, "new"), "-e", "inject=fsync:error=EIO", "-e", "inject=syncfs:error=EIO"})
	if err := h.Submit(strings.NewReader("Subject: doomed delivery\n\nbody\n"), "bob@far.example", []string{"alice@" + h.Domain}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a deferral in qmail-send's log", func() bool { return strings.Contains(m.log.String(), ": deferral: ") })
	m.stop()
	log := m.log.String()
	if i := strings.Index(log, ": deferral: "); i >= 0 {
		t.Logf("qmail-send: ...%s", strings.SplitN(log[i:], "\n", 2)[0])
	}
	if strings.Contains(log, ": success: ") {
		t.Errorf("a delivery succeeded although new/ could not be synced:\n%s", log)
	}
	for _, sub := range []string{"new", "cur", "tmp"} {
		if left := files(t, filepath.Join(md, sub)); len(left) > 0 {
			t.Errorf("%s/ holds %v after the failed delivery", sub, left)
		}
	}
	if h.QueueEmpty() {
		t.Errorf("the message left the queue although it was not delivered:\n%s", log)
	}
	ev := m.tr.load()
	inj := find(ev, 0, func(e Event) bool { return (IsSync(e) || IsSyncAll(e)) && e.Injected })
	if inj == nil || inj.FDPath() != filepath.Join(md, "new") {
		t.Errorf("no fsync or syncfs through new/ failed:\n%s", m.tr.dump())
	}
	if t.Failed() {
		t.Logf("log:\n%s", log)
	}
}

// TestQueuedFsyncFailure runs a whole MTA under strace with every syncfs through a
// descriptor of the queue directory failing (qmail-queued's group commit, which
// replaces its fsyncs of mess/, intd/ and their directories), and queues through
// qmail-queued, directly (queueclient) and through SMTP (swaks and qmail-smtpd): the
// service must answer qmail-queue's write error (53), which qmail-smtpd turns into a
// 4xx reply, and leave nothing queued.
func TestQueuedFsyncFailure(t *testing.T) {
	swaks := testpeer.Need(t, "swaks")
	h := sandbox.New(t, sandbox.Options{})
	q := h.Queue()
	q.Dir = realDir(t, q.Dir)
	// Every fsync too, in case a message's files were fsynced one by one instead.
	extra := []string{"-P", q.Dir}
	for i := 0; i < q.Split; i++ {
		extra = append(extra, "-P", filepath.Join(q.Dir, "mess", strconv.Itoa(i)))
	}
	m := startTracedMTA(t, h, append(extra, "-e", "inject=syncfs,fsync:error=EIO"))
	waitQueued(t, h)

	err := h.Submit(strings.NewReader("Subject: doomed\n\nbody\n"), "bob@far.example", []string{"alice@" + h.Domain})
	var qe *queueclient.Error
	if !errors.As(err, &qe) || qe.Code != queue.ExitWrite || qe.Permanent {
		t.Errorf("queueing with a failing fsync: %v; want qmail-queue's temporary write error (%d)", err, queue.ExitWrite)
	}

	cmd := exec.Command(swaks, "--pipe", filepath.Join(h.Bin, "qmail-smtpd"),
		"--from", "bob@far.example", "--to", "alice@"+h.Domain, "--helo", "client.example",
		"--body", "a message that must not be lost", "--timeout", "60")
	cmd.Env = append(h.Env(), "TCPREMOTEIP=127.0.0.1", "TCPLOCALIP=127.0.0.1")
	cmd.Dir = h.Dir
	out, _ := cmd.CombinedOutput()
	if code, text := dataReply(t, string(out)); !strings.HasPrefix(code, "4") {
		t.Errorf("qmail-queued's fsync failed, yet the reply to DATA is %s %s:\n%s", code, text, out)
	} else {
		t.Logf("reply to the end of DATA: %s %s", code, text)
	}

	m.stop()
	ev := m.tr.load()
	var failed []string
	for _, e := range ev {
		if IsSyncAll(e) && e.Injected && e.FDPath() == q.Dir {
			failed = append(failed, e.String())
		}
	}
	if len(failed) < 2 {
		t.Errorf("%d syncfs calls on the queue failed, want one per message: %v\n%s", len(failed), failed, m.tr.dump())
	}
	for _, sub := range []string{"todo", "intd", "mess", "info", "local", "remote"} {
		if left := files(t, filepath.Join(q.Dir, sub)); len(left) > 0 {
			t.Errorf("%s/ holds %v after the failed queueing", sub, left)
		}
	}
}

// TestPreprocessingFsyncOrderMany queues several messages in quick succession, half
// of them with a remote recipient as well (routed to a closed local port, so the
// remote delivery is only deferred), so that qmail-send preprocesses them
// concurrently; for each one, every file preprocessing writes (info/, local/,
// remote/) must be synced after its last write, and its directory after that (by
// fsyncs, or by one syncfs covering both), before the message's todo/ entry is removed.
func TestPreprocessingFsyncOrderMany(t *testing.T) {
	const n = 8
	// One split directory: the first round's files are all removed from the same
	// directories, so spares are made and reused (once a later sync covers them).
	h := sandbox.New(t, sandbox.Options{Split: 1})
	q := h.Queue()
	q.Dir = realDir(t, q.Dir)
	tr := twoRounds(t, h, n)
	ev := tr.events

	todoDir := filepath.Join(q.Dir, "todo")
	written := map[string]int{}
	unlinks := 0
	for _, u := range ev {
		p := u.Paths(q.Dir)
		if (u.Call != "unlink" && u.Call != "unlinkat") || !u.OK() || len(p) != 1 || filepath.Dir(p[0]) != todoDir {
			continue
		}
		unlinks++
		id, err := strconv.ParseUint(filepath.Base(p[0]), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		for _, sub := range []string{"info", "local", "remote"} {
			path := q.Path(sub, id)
			names := Names(ev, q.Dir, path, u.Seq)
			if find(ev, 0, func(e Event) bool {
				s, ok := names[e.FDPath()]
				return e.Seq < u.Seq && IsModify(e) && e.OK() && ok && s.Has(e)
			}) == nil {
				continue // no recipient on that channel
			}
			written[sub]++
			syncedBetween(t, ev, q.Dir, path, u.Seq, fmt.Sprintf("%s/ of message %d", sub, id))
			dirSyncedBetween(t, ev, filepath.Dir(path), -1, u.Seq, fmt.Sprintf("%s/ entry of message %d", sub, id))
		}
	}
	// For the record (not asserted): what durability costs in syncs, by directory.
	syncs := map[string]int{}
	for _, e := range ev {
		if IsSyncAll(e) && e.OK() {
			syncs[e.Call]++ // a group commit: qmail-send's, qmail-queued's or a worker's
			continue
		}
		if IsSync(e) && e.OK() {
			rel, _ := filepath.Rel(h.Dir, e.FDPath())
			if strings.HasPrefix(rel, "queue/") && strings.Count(rel, "/") >= 2 {
				rel = filepath.Dir(rel) // queue/info/<split>/<id> -> queue/info/<split>
			}
			syncs[strings.TrimRight(strings.Map(func(r rune) rune {
				if r >= '0' && r <= '9' {
					return -1
				}
				return r
			}, rel), "/")]++
		}
	}
	if os.Getenv("DURABILITY_DUMP") != "" {
		t.Logf("trace:\n%s", tr.dump())
	}
	t.Logf("fsyncs for %d messages (%d with a remote recipient): %v", n, n/2, syncs)
	reused := 0
	for _, e := range ev {
		if p := e.Paths(q.Dir); IsLink(e) && e.OK() && len(p) == 2 && filepath.Dir(p[0]) == filepath.Join(q.Dir, "spare", "s") {
			reused++
		}
	}
	t.Logf("%d files made from spares", reused)
	if reused == 0 {
		t.Errorf("no file was made from a spare: the reuse path is not covered")
	}
	if unlinks != n || written["info"] != n || written["local"] != n || written["remote"] != n/2 {
		t.Errorf("%d todo/ entries removed, files written before: %v; want %d, with info and local for each and remote for %d",
			unlinks, written, n, n/2)
	}
	if t.Failed() {
		t.Logf("trace:\n%s", tr.dump())
	}
}

// TestBounceFsyncOrder traces a whole MTA while a message to an unknown local user
// bounces (to a remote sender, whose delivery is only deferred), and checks the two
// hand-overs of a bounce: the failure report in bounce/<id> is fsynced (and bounce/
// itself) before qmail-send marks the recipient done, and the bounce message is
// queued durably (its todo/ entry synced) before bounce/<id> is removed.
func TestBounceFsyncOrder(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	q := h.Queue()
	q.Dir = realDir(t, q.Dir)
	if err := os.WriteFile(filepath.Join(h.Dir, "control", "smtproutes"), []byte("remote.example:127.0.0.1:1\n"), 0644); err != nil {
		t.Fatal(err)
	}
	m := startTracedMTA(t, h, nil)
	waitQueued(t, h)
	if err := h.Submit(strings.NewReader("Subject: to nobody\n\nbody\n"), "bob@remote.example", []string{"nobody-here@" + h.Domain}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the bounce in qmail-send's log", func() bool { return strings.Contains(m.log.String(), "bounce msg ") })
	m.stop()
	tr := m.tr
	ev := tr.load()

	bounceDir := filepath.Join(q.Dir, "bounce")
	unlink := find(ev, 0, func(e Event) bool {
		p := e.Paths(q.Dir)
		return (e.Call == "unlink" || e.Call == "unlinkat") && e.OK() && len(p) == 1 && filepath.Dir(p[0]) == bounceDir
	})
	if unlink == nil {
		t.Fatalf("bounce/ file never removed:\nlog:\n%s\ntrace:\n%s", m.log.String(), tr.dump())
	}
	bfn := unlink.Paths(q.Dir)[0]
	id, err := strconv.ParseUint(filepath.Base(bfn), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	local := q.Path("local", id)
	done := find(ev, 0, func(e Event) bool {
		return (e.Call == "pwrite64" || e.Call == "write") && e.OK() && e.FDPath() == local && e.Data() == "D"
	})
	if done == nil {
		t.Fatalf("the failed recipient was never marked done:\n%s", tr.dump())
	}
	syncedBetween(t, ev, q.Dir, bfn, done.Seq, "bounce/ report")
	dirSyncedBetween(t, ev, bounceDir, -1, done.Seq, "bounce/ entry")

	// The bounce itself: the last message linked into todo/ before bounce/<id> goes.
	var link *Event
	for i := range ev[:unlink.Seq] {
		if p := ev[i].Paths(q.Dir); IsLink(ev[i]) && ev[i].OK() && len(p) == 2 && filepath.Dir(p[1]) == filepath.Join(q.Dir, "todo") {
			link = &ev[i]
		}
	}
	if link == nil {
		t.Fatalf("no bounce linked into todo/ before %s was removed:\n%s", bfn, tr.dump())
	}
	bid, err := strconv.ParseUint(filepath.Base(link.Paths(q.Dir)[1]), 10, 64)
	if err != nil || bid == id {
		t.Fatalf("the todo/ link before the bounce/ removal is %s, not a new message", link.Line)
	}
	checkEnqueueOrder(t, tr, q, bid, link, unlink.Seq)
}

// checkIDReuse checks, in a trace in which a finished message's mess/ file was made a
// spare, that the inode (which names the next message that takes it: its id) was
// emptied only after the removals of the message's own info/ and local/ files were on
// disk: otherwise a crash could bring one back and join an old message's recipients
// or sender to a new message with the same id.
func checkIDReuse(t *testing.T, tr *traced, q queue.Queue, todo string) {
	t.Helper()
	ev := tr.events
	id, err := strconv.ParseUint(filepath.Base(todo), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	// The mess/ file and its names as it is set aside and made a spare.
	names := map[string]bool{q.Path("mess", id): true}
	for _, e := range ev {
		if p := e.Paths(q.Dir); IsLink(e) && e.OK() && len(p) == 2 && names[p[0]] {
			names[p[1]] = true
		}
	}
	empty := reusable(ev, q, names, 0)
	if empty == nil {
		return // unlinked, not reused
	}
	for _, sub := range []string{"info", "local"} {
		p := q.Path(sub, id)
		var gone *Event
		for i := range ev[:empty.Seq] {
			e := &ev[i]
			ps := e.Paths(q.Dir)
			if e.OK() && ((e.Call == "unlink" || e.Call == "unlinkat") && len(ps) == 1 && ps[0] == p ||
				IsLink(*e) && len(ps) == 2 && ps[0] == p) {
				gone = e
			}
		}
		if gone == nil {
			t.Errorf("mess/%d was made reusable (#%d) while %s/%d was still there", id, empty.Seq, sub, id)
			continue
		}
		if seq, err := DirSyncedBetween(ev, filepath.Dir(p), gone.Seq, empty.Seq); err == nil {
			t.Logf("%s/%d removed at #%d, synced at #%d (%s); mess/%d made reusable at #%d", sub, id, gone.Seq, seq, ev[seq].Call, id, empty.Seq)
		} else {
			t.Errorf("mess/%d was made reusable (#%d) before the removal of %s/%d (#%d) was on disk: %v",
				id, empty.Seq, sub, id, gone.Seq, err)
		}
	}
}

// reusable returns the first event from from on that lets a queue writer overwrite
// the file known by names: a change of its contents (a write or truncation) or its
// rename into spare/q under its inode number, where qmail-queued may take it (a name
// starting with a dot is only set aside). It returns nil when there is none.
func reusable(ev []Event, q queue.Queue, names map[string]bool, from int) *Event {
	spareQ := filepath.Join(q.Dir, queue.SpareQ)
	return find(ev, from, func(e Event) bool {
		if !e.OK() {
			return false
		}
		if IsModify(e) {
			return names[e.FDPath()]
		}
		p := e.Paths(q.Dir)
		return IsLink(e) && len(p) == 2 && names[p[0]] && filepath.Dir(p[1]) == spareQ &&
			!strings.HasPrefix(filepath.Base(p[1]), ".")
	})
}

// twoRounds traces a whole MTA through two rounds of n/2 messages each, every other
// one with a remote recipient as well (routed to a closed local port, so the remote
// delivery is only deferred): the second round's files are made from the first one's
// finished files (spare/s), overwritten and cut to length.
func twoRounds(t *testing.T, h *sandbox.Home, n int) *traced {
	t.Helper()
	q := h.Queue()
	// Port 1 on the loopback: nothing listens, so the remote delivery fails at once.
	if err := os.WriteFile(filepath.Join(h.Dir, "control", "smtproutes"), []byte("remote.example:127.0.0.1:1\n"), 0644); err != nil {
		t.Fatal(err)
	}
	m := startTracedMTA(t, h, nil)
	waitQueued(t, h)
	for i := 0; i < n; i++ {
		rcpts := []string{"alice@" + h.Domain}
		if i%2 == 1 {
			rcpts = append(rcpts, "carol@remote.example")
		}
		if err := h.Submit(strings.NewReader(fmt.Sprintf("Subject: message %d\n\nbody\n", i)), "bob@far.example", rcpts); err != nil {
			t.Fatal(err)
		}
		if i == n/2-1 {
			h.WaitMessages(t, "alice", n/2)
			waitFor(t, "finished files in spare/s", func() bool {
				return len(files(t, filepath.Join(q.Dir, "spare", "s"))) > 0
			})
		}
	}
	h.WaitMessages(t, "alice", n)
	waitFor(t, "an empty todo/", func() bool { ids, err := q.Todo(); return err == nil && len(ids) == 0 })
	m.stop()
	m.tr.load()
	return m.tr
}

// TestSpareReuseWaitsForDurableRemoval checks qmail-send's reuse of its finished
// files (spare/s): a file set aside from info/, local/ or remote/ may be written as
// another message's file only once its removal from there is on disk. Otherwise a
// crash on a file system that does not order metadata updates (ext4 without a
// journal) could bring the old name back, pointing to the new contents: a local/<id>
// of a message still queued for its remote recipients would then hold another
// message's recipients, and the old message would be delivered to them.
func TestSpareReuseWaitsForDurableRemoval(t *testing.T) {
	// One split directory: the first round's files are all removed from the same
	// directories, so spares are made and reused (once a later sync covers them).
	h := sandbox.New(t, sandbox.Options{Split: 1})
	q := h.Queue()
	q.Dir = realDir(t, q.Dir)
	tr := twoRounds(t, h, 8)
	ev := tr.events
	spareS := filepath.Join(q.Dir, "spare", "s")
	stashed := map[string]*Event{} // spare/s name -> the rename that put it there
	reused, early := 0, 0
	for i := range ev {
		e := &ev[i]
		p := e.Paths(q.Dir)
		if !IsLink(*e) || !e.OK() || len(p) != 2 {
			continue
		}
		if filepath.Dir(p[1]) == spareS {
			stashed[p[1]] = e
			continue
		}
		if filepath.Dir(p[0]) != spareS || stashed[p[0]] == nil {
			continue
		}
		// p[0] -> p[1]: a spare made into a new file; find its first change.
		from := stashed[p[0]]
		delete(stashed, p[0])
		w := find(ev, e.Seq, func(x Event) bool { return IsModify(x) && x.OK() && x.FDPath() == p[1] })
		if w == nil {
			continue
		}
		reused++
		old := from.Paths(q.Dir)[0]
		if _, err := DirSyncedBetween(ev, filepath.Dir(old), from.Seq, w.Seq); err != nil {
			if early++; early <= 3 {
				t.Errorf("%s, set aside from %s (#%d), is written as %s (#%d) before that removal is on disk: %v",
					p[0], old, from.Seq, p[1], w.Seq, err)
			}
		}
	}
	t.Logf("%d spares reused, %d of them before their removal was on disk", reused, early)
	if reused == 0 {
		t.Errorf("no spare was reused: the check saw nothing")
	}
}
