package send

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/clean"
	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/sandbox"
)

// fakeSpawner answers spawn commands like qmail-lspawn/rspawn would, deciding by the
// recipient's local part: ok* succeeds, temp* defers, perm* fails, hold* waits until
// released. It is the other end of the real slot protocol.
type fakeSpawner struct {
	mu       sync.Mutex
	attempts map[string]int
	senders  map[string]string
	release  chan struct{}
	cmdW     *io.PipeWriter // daemon writes commands here
	repR     *io.PipeReader // daemon reads reports here
	repW     *io.PipeWriter // the spawner's end of the reports
}

func newFakeSpawner() (*fakeSpawner, Conn) {
	cr, cw := io.Pipe()
	rr, rw := io.Pipe()
	f := &fakeSpawner{attempts: map[string]int{}, senders: map[string]string{}, release: make(chan struct{}), cmdW: cw, repR: rr, repW: rw}
	var wmu sync.Mutex
	reply := func(b []byte) {
		wmu.Lock()
		defer wmu.Unlock()
		rw.Write(b)
	}
	go func() {
		reply([]byte{SpawnLimit})
		br := bufio.NewReader(cr)
		for {
			slot, err := br.ReadByte()
			if err != nil {
				rw.Close()
				return
			}
			messid, _ := br.ReadString(0)
			sender, _ := br.ReadString(0)
			recip, err := br.ReadString(0)
			if err != nil {
				rw.Close()
				return
			}
			messid, sender, recip = strings.TrimSuffix(messid, "\x00"), strings.TrimSuffix(sender, "\x00"), strings.TrimSuffix(recip, "\x00")
			f.mu.Lock()
			f.attempts[recip]++
			f.senders[recip] = sender
			f.mu.Unlock()
			go func() {
				var rep string
				box := strings.TrimPrefix(recip, "v-") // the virtualdomains prepend
				switch {
				case strings.HasPrefix(box, "ok"):
					rep = "Kdid_1+0+0/ " + messid + "\n"
				case strings.HasPrefix(box, "temp"):
					rep = "ZTemporary failure here.\n"
				case strings.HasPrefix(box, "perm"):
					rep = "DSorry, no mailbox here by that name. (#5.1.1)\n"
				case strings.HasPrefix(box, "hold"):
					<-f.release
					rep = "Kheld and delivered\n"
				default:
					rep = "Xnonsense"
				}
				reply(append(append([]byte{slot}, rep...), 0))
			}()
		}
	}()
	return f, Conn{W: cw, R: rr}
}

func (f *fakeSpawner) count(recip string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[recip]
}

type injected struct {
	sender string
	recips []string
	msg    string
}

type recordingInjector struct {
	mu   sync.Mutex
	msgs []injected
}

func (r *recordingInjector) Inject(msg io.Reader, sender string, recips []string) (int, error) {
	b, err := io.ReadAll(msg)
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, injected{sender, recips, string(b)})
	return 4242, nil
}

func (r *recordingInjector) all() []injected {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]injected(nil), r.msgs...)
}

// makeQueue builds an empty queue the way qmail's install does.
func makeQueue(t *testing.T) queue.Queue {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"pid", "intd", "todo", "bounce", "lock"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0700); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range queue.SplitDirs {
		for i := 0; i < queue.DefaultSplit; i++ {
			os.MkdirAll(filepath.Join(dir, d, strconv.Itoa(i)), 0700)
		}
	}
	os.WriteFile(filepath.Join(dir, "lock", "sendmutex"), nil, 0600)
	return queue.Open(dir)
}

var nextID uint64 = 1000

// enqueue writes a message as qmail-queue leaves it: mess, intd and todo.
func enqueue(t *testing.T, q queue.Queue, sender string, recips ...string) uint64 {
	t.Helper()
	nextID++
	id := nextID
	if err := os.WriteFile(q.Path("mess", id), []byte("Subject: test "+strconv.FormatUint(id, 10)+"\n\nbody\n"), 0644); err != nil {
		t.Fatal(err)
	}
	env := "u1001\x00p555\x00F" + sender + "\x00"
	for _, r := range recips {
		env += "T" + r + "\x00"
	}
	os.WriteFile(q.Path("intd", id), []byte(env), 0644)
	if err := os.Link(q.Path("intd", id), q.Path("todo", id)); err != nil {
		t.Fatal(err)
	}
	return id
}

type harness struct {
	q       queue.Queue
	d       *Daemon
	log     *sandbox.Log
	spawn   [nchan]*fakeSpawner
	inj     *recordingInjector
	trigger chan struct{}
	sigs    chan os.Signal
	done    chan error
}

// cleanTap wraps the daemon's end of the qmail-clean pipe; tests replace it to watch
// requests.
var cleanTap = func(w io.Writer) io.Writer { return w }

func startDaemon(t *testing.T, q queue.Queue, lifetime int64) *harness {
	t.Helper()
	return startDaemonWith(t, q, lifetime, [nchan]int{10, 20})
}

func startDaemonWith(t *testing.T, q queue.Queue, lifetime int64, conc [nchan]int) *harness {
	t.Helper()
	h := &harness{q: q, log: &sandbox.Log{}, inj: &recordingInjector{}, trigger: make(chan struct{}, 1),
		sigs: make(chan os.Signal, 4), done: make(chan error, 1)}
	rw := &Rewriter{EnvNoAtHost: "here.example", Locals: map[string]bool{"here.example": true},
		PercentHack: map[string]bool{}, VirtualDoms: map[string]string{"virt.example": "v"}}
	cfg := &Config{Lifetime: lifetime, Concurrency: conc, BounceFrom: "MAILER-DAEMON",
		BounceHost: "here.example", DoubleBounceTo: "postmaster@here.example", Rewriter: rw}
	var conns [nchan]Conn
	for c := 0; c < nchan; c++ {
		h.spawn[c], conns[c] = newFakeSpawner()
	}
	cr, cw := io.Pipe()
	rr, rw2 := io.Pipe()
	go func() { clean.Serve(q, cr, rw2); rw2.Close() }()
	h.d = &Daemon{Queue: q, Config: cfg, Log: Logger{W: h.log}, Spawn: conns, Clean: Conn{W: cleanTap(cw), R: rr},
		Inject: h.inj, Trigger: h.trigger, Signals: h.sigs}
	go func() { h.done <- h.d.Run() }()
	t.Cleanup(func() { h.stop(t) })
	return h
}

func (h *harness) stop(t *testing.T) {
	select {
	case h.sigs <- syscall.SIGTERM:
	default:
	}
	select {
	case <-h.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("qmail-send did not exit; log:\n%s", h.log.String())
	}
}

func (h *harness) pull() {
	select {
	case h.trigger <- struct{}{}:
	default:
	}
}

// waitFor polls until cond holds; it gives up after a generous limit so a broken daemon
// fails the test instead of hanging it.
func waitFor(t *testing.T, h *harness, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("gave up waiting for %s; log:\n%s", what, h.log.String())
}

func gone(q queue.Queue, id uint64) bool {
	for _, sub := range []string{"mess", "info", "local", "remote", "todo", "intd", "bounce"} {
		if _, err := os.Stat(q.Path(sub, id)); err == nil {
			return false
		}
	}
	return true
}

func TestDeliverAndClean(t *testing.T) {
	q := makeQueue(t)
	h := startDaemon(t, q, 604800)
	id := enqueue(t, q, "joe@remote.example", "ok1@here.example", "ok2@remote.example", "ok3", "ok4@virt.example")
	h.pull()
	waitFor(t, h, "message to leave the queue", func() bool { return gone(q, id) })
	if n := h.spawn[Local].count("ok1@here.example"); n != 1 {
		t.Errorf("ok1 delivered %d times", n)
	}
	if n := h.spawn[Local].count("ok3@here.example"); n != 1 {
		t.Errorf("envnoathost: ok3@here.example delivered %d times", n)
	}
	if n := h.spawn[Local].count("v-ok4@virt.example"); n != 1 {
		t.Errorf("virtual domain: v-ok4@virt.example delivered %d times", n)
	}
	if n := h.spawn[Remote].count("ok2@remote.example"); n != 1 {
		t.Errorf("ok2 delivered remotely %d times", n)
	}
	log := h.log.String()
	for _, want := range []string{
		fmt.Sprintf("new msg %d\n", id),
		fmt.Sprintf("info msg %d: bytes %d from <joe@remote.example> qp 555 uid 1001\n", id, len("Subject: test 1001\n\nbody\n")),
		fmt.Sprintf(": msg %d to local ok1@here.example\n", id),
		fmt.Sprintf(": msg %d to remote ok2@remote.example\n", id),
		": success: did_1+0+0/_",
		fmt.Sprintf("end msg %d\n", id),
		"status: local 0/10 remote 0/20\n",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if len(h.inj.all()) != 0 {
		t.Error("a bounce was sent for a delivered message")
	}
}

func TestPermanentFailureBounces(t *testing.T) {
	q := makeQueue(t)
	h := startDaemon(t, q, 604800)
	id := enqueue(t, q, "joe@remote.example", "perm1@here.example", "ok@here.example", "perm2@far.example", "perm3@virt.example")
	h.pull()
	waitFor(t, h, "message to leave the queue", func() bool { return gone(q, id) })
	b := h.inj.all()
	if len(b) != 1 {
		t.Fatalf("%d bounces", len(b))
	}
	if b[0].sender != "" || len(b[0].recips) != 1 || b[0].recips[0] != "joe@remote.example" {
		t.Errorf("bounce envelope %q -> %q", b[0].sender, b[0].recips)
	}
	for _, want := range []string{
		"To: joe@remote.example\n",
		"<perm1@here.example>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n",
		"<perm2@far.example>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n",
		"<perm3@virt.example>:\n", // the virtualdomains prepend is stripped
		"--- Below this line is a copy of the message.\n\nReturn-Path: <joe@remote.example>\nSubject: test",
	} {
		if !strings.Contains(b[0].msg, want) {
			t.Errorf("bounce lacks %q:\n%s", want, b[0].msg)
		}
	}
	if strings.Contains(b[0].msg, "<ok@") {
		t.Error("bounce names a delivered recipient")
	}
	if !strings.Contains(h.log.String(), fmt.Sprintf("bounce msg %d qp 4242\n", id)) {
		t.Errorf("no bounce msg line:\n%s", h.log.String())
	}
}

func TestDoubleAndTripleBounce(t *testing.T) {
	q := makeQueue(t)
	h := startDaemon(t, q, 604800)
	dbl := enqueue(t, q, "", "perm@far.example")
	tri := enqueue(t, q, "#@[]", "perm@far.example")
	h.pull()
	waitFor(t, h, "both to leave the queue", func() bool { return gone(q, dbl) && gone(q, tri) })
	b := h.inj.all()
	if len(b) != 1 {
		t.Fatalf("%d bounces, want the double bounce only", len(b))
	}
	if b[0].sender != "#@[]" || b[0].recips[0] != "postmaster@here.example" {
		t.Errorf("double bounce envelope %q -> %q", b[0].sender, b[0].recips)
	}
	if !strings.Contains(b[0].msg, "but the bounce bounced!") {
		t.Errorf("double bounce text:\n%s", b[0].msg)
	}
	if !strings.Contains(h.log.String(), fmt.Sprintf("triple bounce: discarding bounce/%d\n", tri)) {
		t.Errorf("no triple bounce line:\n%s", h.log.String())
	}
}

func TestVERPSender(t *testing.T) {
	q := makeQueue(t)
	h := startDaemon(t, q, 604800)
	id := enqueue(t, q, "list-@lists.example-@[]", "ok@far.example", "perm@far.example")
	h.pull()
	waitFor(t, h, "message to leave the queue", func() bool { return gone(q, id) })
	h.spawn[Remote].mu.Lock()
	s := h.spawn[Remote].senders["ok@far.example"]
	h.spawn[Remote].mu.Unlock()
	if s != "list-ok=far.example@lists.example" {
		t.Errorf("VERP sender %q", s)
	}
	b := h.inj.all()
	if len(b) != 1 || b[0].recips[0] != "list-@lists.example" {
		t.Fatalf("bounce to %+v", b)
	}
}

func TestTemporaryFailureRetriedThenBounced(t *testing.T) {
	q := makeQueue(t)
	// Lifetime 1 s: the message is dying from its second second on.
	h := startDaemon(t, q, 1)
	id := enqueue(t, q, "joe@remote.example", "temp@here.example", "ok@here.example")
	h.pull()
	waitFor(t, h, "first attempt", func() bool { return h.spawn[Local].count("temp@here.example") >= 1 })
	waitFor(t, h, "retries and final bounce", func() bool {
		select {
		case h.sigs <- syscall.SIGALRM:
		default:
		}
		return gone(q, id)
	})
	if n := h.spawn[Local].count("temp@here.example"); n < 2 {
		t.Errorf("temp failure tried %d times; want a retry", n)
	}
	if n := h.spawn[Local].count("ok@here.example"); n != 1 {
		t.Errorf("successful recipient delivered %d times", n)
	}
	b := h.inj.all()
	if len(b) != 1 || !strings.Contains(b[0].msg, "<temp@here.example>:\nTemporary failure here.\nI'm not going to try again; this message has been in the queue too long.\n\n") {
		t.Fatalf("bounces: %+v", b)
	}
	if !strings.Contains(h.log.String(), ": deferral: Temporary_failure_here./") {
		t.Errorf("no deferral line:\n%s", h.log.String())
	}
}

func TestRecoveryFromInfo(t *testing.T) {
	q := makeQueue(t)
	// A message qmail-send had preprocessed and partly delivered before a crash.
	id := uint64(777)
	os.WriteFile(q.Path("mess", id), []byte("Subject: old\n\n"), 0644)
	os.WriteFile(q.Path("info", id), []byte("Fjoe@remote.example\x00"), 0600)
	os.WriteFile(q.Path("local", id), []byte("Dokdone@here.example\x00Tokleft@here.example\x00"), 0600)
	os.WriteFile(q.Path("intd", id), []byte("stale"), 0600)
	h := startDaemon(t, q, 604800)
	waitFor(t, h, "old message to finish", func() bool { return gone(q, id) })
	if h.spawn[Local].count("okdone@here.example") != 0 {
		t.Error("a D recipient was delivered again")
	}
	if h.spawn[Local].count("okleft@here.example") != 1 {
		t.Error("the T recipient was not delivered")
	}
}

func TestCleanExitWaitsForDeliveries(t *testing.T) {
	q := makeQueue(t)
	h := startDaemon(t, q, 604800)
	id := enqueue(t, q, "joe@remote.example", "hold@here.example", "temp2@far.example")
	h.pull()
	waitFor(t, h, "held delivery to start", func() bool { return h.spawn[Local].count("hold@here.example") == 1 })
	waitFor(t, h, "remote deferral", func() bool { return strings.Contains(h.log.String(), ": deferral:") })
	h.sigs <- syscall.SIGTERM
	select {
	case <-h.done:
		t.Fatal("exited with a delivery in progress")
	case <-time.After(200 * time.Millisecond):
	}
	close(h.spawn[Local].release)
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after the delivery finished")
	}
	h.done <- nil // for the cleanup
	log := h.log.String()
	if !strings.Contains(log, "exitasap\n") || !strings.HasSuffix(log, "status: exiting\n") {
		t.Errorf("log:\n%s", log)
	}
	// The local recipient is done; the remote one waits, with its retry time kept in
	// remote/<id>'s mtime.
	b, _ := os.ReadFile(q.Path("local", id))
	if len(b) != 0 && b[0] != 'D' {
		t.Errorf("local/%d = %q", id, b)
	}
	st, err := os.Stat(q.Path("remote", id))
	if err != nil {
		t.Fatal(err)
	}
	if st.ModTime().Before(time.Now().Add(300 * time.Second)) {
		t.Errorf("remote retry time not kept: mtime %v", st.ModTime())
	}
}

func TestSingleInstance(t *testing.T) {
	q := makeQueue(t)
	h := startDaemon(t, q, 604800)
	waitFor(t, h, "start", func() bool { return strings.Contains(h.log.String(), "status:") })
	h2 := &harness{log: &sandbox.Log{}}
	d := &Daemon{Queue: q, Log: Logger{W: h2.log}}
	if err := d.Run(); err == nil {
		t.Fatal("second qmail-send ran")
	}
	if !strings.Contains(h2.log.String(), "alert: cannot start: qmail-send is already running\n") {
		t.Errorf("log: %q", h2.log.String())
	}
}

func TestLostSpawnerStopsSend(t *testing.T) {
	q := makeQueue(t)
	h := startDaemon(t, q, 604800)
	waitFor(t, h, "start", func() bool { return strings.Contains(h.log.String(), "status:") })
	h.spawn[Local].repW.Close()
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("qmail-send kept running without its local spawner")
	}
	h.done <- nil
	if !strings.Contains(h.log.String(), "alert: oh no! lost spawn connection! dying...\n") {
		t.Errorf("log:\n%s", h.log.String())
	}
}
