package queued_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/groupsync"
	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/queueclient"
	"github.com/notqmail/notqmail/src/queued"
	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/testpeer"
)

// service is a running bin/qmail-queued of a sandbox.
type service struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   *sandbox.Log
	done  chan struct{}
}

// startService runs bin/qmail-queued as qmail-start would (fd 0 a pipe whose end
// stops it) and waits until it listens, or until it has logged that it will not.
func startService(t testing.TB, h *sandbox.Home, wrap ...string) *service {
	t.Helper()
	return startServiceWait(t, h, true, wrap...)
}

func startServiceWait(t testing.TB, h *sandbox.Home, listen bool, wrap ...string) *service {
	t.Helper()
	prog := filepath.Join(h.Bin, "qmail-queued")
	args := append(append([]string{}, wrap...), prog)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = h.Env()
	s := &service{cmd: cmd, log: &sandbox.Log{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	var err error
	if s.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("qmail-queued log:\n%s", s.log.String())
		}
	})
	sock := queued.SocketPath(h.Dir)
	for deadline := time.Now().Add(time.Minute); ; {
		if listen {
			if c, err := net.Dial("unix", sock); err == nil {
				c.Close()
				return s
			}
		} else if strings.Contains(s.log.String(), "clients run it themselves") {
			return s
		}
		select {
		case <-s.done:
			t.Fatalf("qmail-queued exited:\n%s", s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("qmail-queued did not start:\n%s", s.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *service) stop(t testing.TB) {
	s.stdin.Close()
	select {
	case <-s.done:
	case <-time.After(time.Minute):
		s.cmd.Process.Kill()
		<-s.done
		t.Errorf("qmail-queued did not stop at end of file on fd 0")
	}
}

var receivedRE = regexp.MustCompile(`^Received: \(qmail (\d+) invoked (by uid \d+|from network|for bounce|by alias)\); `)

// queued returns the queued messages' mess/ and todo/ contents by id.
func queuedMessages(t *testing.T, q queue.Queue) map[uint64][2]string {
	t.Helper()
	ids, err := q.Todo()
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64][2]string{}
	for _, id := range ids {
		m, err := os.ReadFile(q.Path("mess", id))
		if err != nil {
			t.Fatal(err)
		}
		e, err := os.ReadFile(q.Path("todo", id))
		if err != nil {
			t.Fatal(err)
		}
		out[id] = [2]string{string(m), string(e)}
	}
	return out
}

func only(t *testing.T, q queue.Queue) (uint64, string, string) {
	t.Helper()
	m := queuedMessages(t, q)
	if len(m) != 1 {
		t.Fatalf("%d messages queued, want 1", len(m))
	}
	for id, v := range m {
		return id, v[0], v[1]
	}
	panic("unreachable")
}

func clearQueue(t *testing.T, q queue.Queue) {
	t.Helper()
	ids, _ := q.Todo()
	for _, id := range ids {
		for _, sub := range []string{"todo", "intd", "mess"} {
			if err := os.Remove(q.Path(sub, id)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// messageFiles lists the files of mess/, intd/, todo/ and pid/.
func messageFiles(q queue.Queue) []string {
	var out []string
	for _, sub := range []string{"mess", "intd", "todo", "pid"} {
		filepath.WalkDir(filepath.Join(q.Dir, sub), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

const msg = "From: bob@example.org\nTo: alice@sandbox.example\nSubject: via qmail-queued\n\nhello\n"

// TestSocketCaller: a message queued through the socket has the Received line and
// u/p records qmail-queue would give its caller: the caller's uid and pid, here the
// test process's own (a qmail-queue process would have a pid of its own).
func TestSocketCaller(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	s := startService(t, h)
	c, err := h.QueueConfig().Open()
	if err != nil {
		t.Fatal(err)
	}
	if c.PID() != os.Getpid() {
		t.Fatalf("client PID %d: not through qmail-queued", c.PID())
	}
	io.WriteString(c, msg)
	c.From("bob@example.org")
	c.To("alice@sandbox.example")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_, mess, env := only(t, h.Queue())
	// Root in a sandbox becomes its owner before queueing, as qmail-queue would.
	uid := h.UID
	wantRec := fmt.Sprintf("Received: (qmail %d invoked by uid %d); ", os.Getpid(), uid)
	if !strings.HasPrefix(mess, wantRec) || !strings.HasSuffix(mess, "-0000\n"+msg) {
		t.Errorf("mess = %q, want %q...%q", mess, wantRec, msg)
	}
	if want := fmt.Sprintf("u%d\x00p%d\x00Fbob@example.org\x00Talice@sandbox.example\x00", uid, os.Getpid()); env != want {
		t.Errorf("envelope %q, want %q", env, want)
	}
	// At end of file on fd 0 it stops and takes its socket away.
	s.stop(t)
	if _, err := os.Lstat(queued.SocketPath(h.Dir)); err == nil {
		t.Error("socket left after qmail-queued stopped")
	}
}

// TestSocketOtherUser: as root, a caller of another uid queues through qmail-inject
// and the service records that uid and the caller's pid.
func TestSocketOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a caller as another uid")
	}
	h := sandbox.New(t, sandbox.Options{})
	startService(t, h)
	const otherUID = 4321
	cmd := exec.Command(filepath.Join(h.Bin, "qmail-inject"), "-fbob@example.org", "alice@sandbox.example")
	cmd.Env = append(h.Env(), "USER=bob", "LOGNAME=bob")
	cmd.Stdin = strings.NewReader(msg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: otherUID, Gid: otherUID}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("qmail-inject as uid %d: %v\n%s", otherUID, err, out.String())
	}
	_, mess, env := only(t, h.Queue())
	wantRec := fmt.Sprintf("Received: (qmail %d invoked by uid %d); ", cmd.Process.Pid, otherUID)
	if !strings.HasPrefix(mess, wantRec) {
		t.Errorf("mess = %q, want it to start %q", mess, wantRec)
	}
	if want := fmt.Sprintf("u%d\x00p%d\x00", otherUID, cmd.Process.Pid); !strings.HasPrefix(env, want) {
		t.Errorf("envelope %q, want it to start %q", env, want)
	}
}

// TestFallbackWithoutSocket: without qmail-queued, bin/qmail-queue queues the message.
func TestFallbackWithoutSocket(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	if err := h.Submit(strings.NewReader(msg), "bob@example.org", []string{"alice@sandbox.example"}); err != nil {
		t.Fatal(err)
	}
	_, mess, _ := only(t, h.Queue())
	m := receivedRE.FindStringSubmatch(mess)
	if m == nil || m[1] == strconv.Itoa(os.Getpid()) {
		t.Errorf("Received line %q: want qmail-queue's own pid", strings.SplitN(mess, "\n", 2)[0])
	}
}

// replaceQueue puts a filter script in place of bin/qmail-queue that keeps the
// message and envelope it is given.
func replaceQueue(t *testing.T, h *sandbox.Home) string {
	t.Helper()
	seen := filepath.Join(h.Dir, "filter-seen")
	if err := os.Mkdir(seen, 0777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(seen, 0777)
	prog := filepath.Join(h.Bin, "qmail-queue")
	// bin/ holds hard links into a shared build cache: replace the name, never the file.
	if err := os.Remove(prog); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\ncat >" + seen + "/msg.$$ && cat <&1 >" + seen + "/env.$$\n"
	if err := os.WriteFile(prog, []byte(script), 0755); err != nil {
		t.Fatal(err)
	}
	return seen
}

func filterSaw(t *testing.T, seen string) []string {
	t.Helper()
	var got []string
	ents, _ := os.ReadDir(seen)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "msg.") {
			b, _ := os.ReadFile(filepath.Join(seen, e.Name()))
			got = append(got, string(b))
		}
	}
	return got
}

// TestFallbackReplacedQueue: a site's filter in place of bin/qmail-queue sees every
// message: qmail-queued does not listen when started with it, and stops serving when
// it replaces the genuine one while it runs.
func TestFallbackReplacedQueue(t *testing.T) {
	t.Run("at start", func(t *testing.T) {
		h := sandbox.New(t, sandbox.Options{})
		seen := replaceQueue(t, h)
		s := startServiceWait(t, h, false)
		if _, err := os.Lstat(queued.SocketPath(h.Dir)); err == nil {
			t.Fatal("qmail-queued listens although bin/qmail-queue is a filter")
		}
		if err := h.Submit(strings.NewReader(msg), "bob@example.org", []string{"alice@sandbox.example"}); err != nil {
			t.Fatal(err)
		}
		if got := filterSaw(t, seen); len(got) != 1 || got[0] != msg {
			t.Errorf("filter saw %q, want the message", got)
		}
		if !strings.Contains(s.log.String(), "not notqmail's qmail-queue") {
			t.Errorf("log: %q", s.log.String())
		}
	})
	t.Run("while running", func(t *testing.T) {
		h := sandbox.New(t, sandbox.Options{})
		startService(t, h)
		seen := replaceQueue(t, h)
		if err := h.Submit(strings.NewReader(msg), "bob@example.org", []string{"alice@sandbox.example"}); err != nil {
			t.Fatal(err)
		}
		if got := filterSaw(t, seen); len(got) != 1 || got[0] != msg {
			t.Errorf("filter saw %q, want the message", got)
		}
		if ids, _ := h.Queue().Todo(); len(ids) != 0 {
			t.Errorf("qmail-queued queued it itself: %v", ids)
		}
	})
}

// dialService connects and reads the greeting.
func dialService(t *testing.T, h *sandbox.Home) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", queued.SocketPath(h.Dir))
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != queued.Ready {
		t.Fatalf("greeting %q %v", b, err)
	}
	return c
}

// TestClientDiesMidMessage: a connection that ends in the middle of the message or
// of the envelope leaves nothing in the queue, and the service goes on serving.
func TestClientDiesMidMessage(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	startService(t, h)
	q := h.Queue()
	chunk := func(s string) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(s)))
		return append(b, s...)
	}
	for _, tc := range []struct{ name, data string }{
		{"mid-chunk", string(chunk("Subject: cut\n\nbody"))[:12]},
		{"between chunks", string(chunk("Subject: cut\n\nbody\n"))},
		{"mid-envelope", string(chunk("Subject: cut\n\nbody\n")) + "\x00\x00\x00\x00Fbob@example.org\x00Talice@"},
		{"before the final NUL", string(chunk("x\n")) + "\x00\x00\x00\x00Fbob@example.org\x00Talice@sandbox.example\x00"},
	} {
		c := dialService(t, h)
		if _, err := io.WriteString(c, tc.data); err != nil {
			t.Fatal(err)
		}
		c.(*net.UnixConn).CloseWrite()
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != queue.ExitRead {
			t.Errorf("%s: answer %d %v, want %d", tc.name, b[0], err, queue.ExitRead)
		}
		c.Close()
		if f := messageFiles(q); len(f) != 0 {
			t.Errorf("%s: left %v", tc.name, f)
		}
	}
	// A client killed in the middle: nothing left either.
	c := dialService(t, h)
	io.WriteString(c, string(chunk("Subject: killed\n\n")))
	c.Close()
	for deadline := time.Now().Add(time.Minute); len(messageFiles(q)) != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("left %v", messageFiles(q))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := h.Submit(strings.NewReader(msg), "bob@example.org", []string{"alice@sandbox.example"}); err != nil {
		t.Fatal(err)
	}
	only(t, q)
}

// TestEnvelopeErrors: the service answers bad envelopes with qmail-queue's codes,
// and queueclient turns them into qmail's texts.
func TestEnvelopeErrors(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	startService(t, h)
	err := h.Submit(strings.NewReader(msg), "bob@example.org", []string{strings.Repeat("a", queue.MaxAddr) + "@x"})
	var qe *queueclient.Error
	if !errorsAs(err, &qe) || qe.Code != queue.ExitAddrTooLong || !qe.Permanent {
		t.Errorf("long address: %v", err)
	}
	c := dialService(t, h)
	io.WriteString(c, "\x00\x00\x00\x00Xbob\x00\x00")
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != queue.ExitEnvelope {
		t.Errorf("bad envelope: answer %d %v, want %d", b[0], err, queue.ExitEnvelope)
	}
	c.Close()
	c = dialService(t, h)
	io.WriteString(c, "\x7f\x00\x00\x00")
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != queue.ExitRead {
		t.Errorf("oversized chunk: answer %d %v, want %d", b[0], err, queue.ExitRead)
	}
	c.Close()
	if f := messageFiles(h.Queue()); len(f) != 0 {
		t.Errorf("left %v", f)
	}
}

func errorsAs(err error, e **queueclient.Error) bool {
	x, ok := err.(*queueclient.Error)
	if ok {
		*e = x
	}
	return ok
}

// TestSpareReuse: qmail-queued takes the message's files from spare/q: the message's
// id is a spare's inode, its files are 0644 with fresh times, and its contents right.
func TestSpareReuse(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	q := h.Queue()
	spares := map[uint64]bool{}
	for i := 0; i < 2; i++ {
		tmp := filepath.Join(q.Dir, queue.SpareQ, "tmp")
		if err := os.WriteFile(tmp, nil, 0600); err != nil {
			t.Fatal(err)
		}
		os.Lchown(tmp, h.UID, h.GID)
		old := time.Now().Add(-100 * time.Hour)
		os.Chtimes(tmp, old, old)
		fi, _ := os.Stat(tmp)
		ino := fi.Sys().(*syscall.Stat_t).Ino
		os.Rename(tmp, filepath.Join(q.Dir, queue.SpareQ, strconv.FormatUint(ino, 10)))
		spares[ino] = true
	}
	startService(t, h)
	before := time.Now().Add(-2 * time.Second)
	if err := h.Submit(strings.NewReader(msg), "bob@example.org", []string{"alice@sandbox.example"}); err != nil {
		t.Fatal(err)
	}
	id, mess, env := only(t, q)
	if !spares[id] {
		t.Fatalf("message id %d is not a spare's inode %v", id, spares)
	}
	if !strings.HasSuffix(mess, msg) || !strings.HasSuffix(env, "Fbob@example.org\x00Talice@sandbox.example\x00") {
		t.Errorf("mess %q env %q", mess, env)
	}
	for _, p := range []string{q.Path("mess", id), q.Path("intd", id)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0644 || int(st.Uid) != h.UID {
			t.Errorf("%s: mode %v uid %d", p, fi.Mode(), st.Uid)
		}
		if !spares[st.Ino] {
			t.Errorf("%s: inode %d is not a spare", p, st.Ino)
		}
		if fi.ModTime().Before(before) || time.Unix(st.Atim.Sec, 0).Before(before) {
			t.Errorf("%s: times not renewed: mtime %v", p, fi.ModTime())
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(q.Dir, queue.SpareQ)); len(ents) != 0 {
		t.Errorf("spare/q still holds %d", len(ents))
	}
	// qmail-qfix finds nothing wrong with the message or with spares waiting in
	// spare/q.
	tmp := filepath.Join(q.Dir, queue.SpareQ, "tmp")
	os.WriteFile(tmp, nil, 0644)
	os.Lchown(tmp, h.UID, h.GID)
	fi, _ := os.Stat(tmp)
	os.Rename(tmp, filepath.Join(q.Dir, queue.SpareQ, strconv.FormatUint(fi.Sys().(*syscall.Stat_t).Ino, 10)))
	if out, err := h.Command("qmail-qfix").CombinedOutput(); err != nil || !strings.HasSuffix(string(out), ": healthy, split 23\n") {
		t.Errorf("qmail-qfix: %v\n%s", err, out)
	}
}

// TestMTAEndToEnd: qmail-start runs qmail-queued; a message sent by swaks to
// qmail-smtpd is queued through it (qmail-smtpd's own pid in the Received line, no
// qmail-queue process) and delivered to the Maildir, and qmail-clean recycles the
// finished message's files into spare/q.
func TestMTAEndToEnd(t *testing.T) {
	sw := testpeer.Need(t, "swaks")
	h := sandbox.New(t, sandbox.Options{})
	m := h.StartMTA(t, sandbox.MTAOptions{})
	m.WaitFor("qmail-queued's socket", func() bool {
		c, err := net.Dial("unix", queued.SocketPath(h.Dir))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	smtpd := exec.Command(filepath.Join(h.Bin, "qmail-smtpd"), "-l", addr)
	smtpd.Env = h.Env()
	smtpdLog := &sandbox.Log{}
	smtpd.Stdout, smtpd.Stderr = smtpdLog, smtpdLog
	if err := smtpd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { smtpd.Process.Kill(); smtpd.Wait() })
	for deadline := time.Now().Add(time.Minute); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("qmail-smtpd does not listen:\n%s", smtpdLog.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(sw, "--server", host, "--port", port, "--hide-informational", "--timeout", "30",
		"--from", "bob@example.org", "--to", "alice@sandbox.example", "--header", "Subject: e2e via qmail-queued").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	msgs := h.WaitMessages(t, "alice", 1)
	body := string(msgs[0].Data)
	if !strings.Contains(body, "Subject: e2e via qmail-queued") {
		t.Fatalf("delivered:\n%s", body)
	}
	want := fmt.Sprintf("Received: (qmail %d invoked by uid %d); ", smtpd.Process.Pid, h.UID)
	if !strings.Contains(body, want) {
		t.Errorf("no %q in the delivered message:\n%s", want, body)
	}
	// The finished message's mess/ and intd/ inodes come back as spares.
	m.WaitFor("spares from qmail-clean", func() bool {
		ents, _ := os.ReadDir(filepath.Join(h.Dir, "queue", queue.SpareQ))
		n := 0
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && e.Name()[0] != '.' && fi.Size() == 0 {
				n++
			}
		}
		return n >= 2
	})
	if err := m.Stop(); err != nil {
		t.Errorf("stop: %v\n%s", err, m.Log().String())
	}
}

// TestDurabilityTrace runs qmail-queued under strace and checks, for a message made
// from new files and one made from spares, that the message and its envelope are
// fsynced and the todo/ link made before the answer goes back to the client.
func TestDurabilityTrace(t *testing.T) {
	st := testpeer.Need(t, "strace")
	h := sandbox.New(t, sandbox.Options{})
	q := h.Queue()
	trace := filepath.Join(t.TempDir(), "strace.out")
	// -s 256: a read may hold the client's framing before the message, and strace's
	// default of 32 characters would then cut the message's first line off.
	s := startService(t, h, st, "-f", "-y", "-s", "256", "-o", trace, "-e",
		"trace=fsync,fdatasync,syncfs,link,linkat,rename,renameat,renameat2,openat,read,write")
	submit := func() uint64 {
		before := map[uint64]bool{}
		ids, _ := q.Todo()
		for _, id := range ids {
			before[id] = true
		}
		if err := h.Submit(strings.NewReader(msg), "bob@example.org", []string{"alice@sandbox.example"}); err != nil {
			t.Fatal(err)
		}
		ids, _ = q.Todo()
		for _, id := range ids {
			if !before[id] {
				return id
			}
		}
		t.Fatal("no new message in todo/")
		return 0
	}
	// Two spares for the first message; the second finds spare/q empty.
	for i := 0; i < 2; i++ {
		tmp := filepath.Join(q.Dir, queue.SpareQ, "tmp")
		if err := os.WriteFile(tmp, nil, 0644); err != nil {
			t.Fatal(err)
		}
		os.Lchown(tmp, h.UID, h.GID)
		fi, _ := os.Stat(tmp)
		os.Rename(tmp, filepath.Join(q.Dir, queue.SpareQ, strconv.FormatUint(fi.Sys().(*syscall.Stat_t).Ino, 10)))
	}
	spared := submit()
	fresh := submit()
	s.stop(t)
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	find := func(from int, re *regexp.Regexp) int {
		for i := from; i < len(lines); i++ {
			if re.MatchString(lines[i]) {
				return i
			}
		}
		return -1
	}
	for _, id := range []uint64{fresh, spared} {
		n := strconv.FormatUint(id, 10)
		// The message's fd is named as it was opened: a pid/ file since unlinked, or a
		// spare since renamed into mess/.
		messName := `mess/\d+/` + n + `|spare/q/` + n
		if m := regexp.MustCompile(`linkat\(AT_FDCWD[^,]*, "pid/([^"]+)", AT_FDCWD[^,]*, "mess/\d+/` + n + `"`).FindStringSubmatch(string(b)); m != nil {
			messName += `|pid/` + regexp.QuoteMeta(m[1])
		}
		messW := regexp.MustCompile(`write\(\d+</[^>]*/(` + messName + `)>`)
		intdW := regexp.MustCompile(`write\(\d+</[^>]*/intd/` + n + `>`)
		iTodo := find(0, regexp.MustCompile(`linkat\(AT_FDCWD[^,]*, "[^"]*intd/`+n+`", AT_FDCWD[^,]*, "[^"]*todo/`+n+`"`))
		iMess, iIntd := -1, -1
		for i := 0; i < iTodo; i++ {
			if messW.MatchString(lines[i]) {
				iMess = i
			}
			if intdW.MatchString(lines[i]) {
				iIntd = i
			}
		}
		if iMess < 0 || iIntd < 0 || iTodo < 0 {
			t.Fatalf("message %d: last write to mess/ at line %d, to intd/ at %d, link to todo/ at %d:\n%s", id, iMess, iIntd, iTodo, b)
		}
		// The connection is the socket the message was read from last before its first
		// write (the messages go one after another, perhaps on one kept connection);
		// its answer is exit code 0, with a greeting for a next message or without.
		// With -f, a read that another thread's call interrupts is split in two lines:
		// "PID read(FD<socket:[N]>,  <unfinished ...>", then "PID <... read resumed>...".
		var sock string
		data := regexp.MustCompile(`read\(\d+<(socket:\[\d+\])>, "[^"]*From: bob@example.org`)
		unfinished := regexp.MustCompile(`^(\d+) +read\(\d+<(socket:\[\d+\])>, +<unfinished`)
		resumed := regexp.MustCompile(`^(\d+) +<\.\.\. read resumed>[^"]*"[^"]*From: bob@example.org`)
		pending := map[string]string{} // pid: socket of its unfinished read
		for i := 0; i < min(iMess, iIntd); i++ {
			if m := data.FindStringSubmatch(lines[i]); m != nil {
				sock = m[1]
			} else if m := unfinished.FindStringSubmatch(lines[i]); m != nil {
				pending[m[1]] = m[2]
			} else if m := resumed.FindStringSubmatch(lines[i]); m != nil && pending[m[1]] != "" {
				sock = pending[m[1]]
			}
		}
		if sock == "" {
			t.Fatalf("message %d: not read from a socket before line %d:\n%s", id, min(iMess, iIntd), b)
		}
		iReply := find(iTodo, regexp.MustCompile(`write\(\d+<`+regexp.QuoteMeta(sock)+`>, "\\0(Q)?", [12]`))
		if iReply < 0 {
			t.Fatalf("message %d: no answer after the todo/ link at line %d:\n%s", id, iTodo, b)
		}
		// Group commit: a syncfs that started after the last write to mess/ and intd/
		// and succeeded before the todo/ link, and another that started after the link
		// and succeeded before the answer.
		if !syncfsBetween(lines, max(iMess, iIntd), iTodo) {
			t.Errorf("message %d: no syncfs between its last write (line %d) and its todo/ link (line %d):\n%s", id, max(iMess, iIntd), iTodo, b)
		}
		if !syncfsBetween(lines, iTodo, iReply) {
			t.Errorf("message %d: no syncfs between its todo/ link (line %d) and the answer (line %d):\n%s", id, iTodo, iReply, b)
		}
	}
	// The second message was made by renaming spares, not by linking a pid/ file.
	n := strconv.FormatUint(spared, 10)
	if find(0, regexp.MustCompile(`rename(at2?)?\(.*spare/q/`+n+`", .*mess/\d+/`+n+`"`)) < 0 {
		t.Errorf("no rename of spare %s into mess/:\n%s", n, b)
	}
}

// syncfsBetween reports whether strace's lines hold a syncfs that started after line
// from and finished successfully before line to. A call that other threads' calls
// interrupted is split into "<unfinished ...>" and "<... syncfs resumed>" lines.
func syncfsBetween(lines []string, from, to int) bool {
	for i := from + 1; i < to; i++ {
		pid, rest, _ := strings.Cut(lines[i], " ")
		rest = strings.TrimLeft(rest, " ")
		if !strings.HasPrefix(rest, "syncfs(") {
			continue
		}
		end := i
		if strings.HasSuffix(rest, "<unfinished ...>") {
			end = -1
			for j := i + 1; j < to; j++ {
				p, r, _ := strings.Cut(lines[j], " ")
				if p == pid && strings.HasPrefix(strings.TrimLeft(r, " "), "<... syncfs resumed>") {
					end = j
					break
				}
			}
			if end < 0 {
				continue
			}
		}
		if strings.HasSuffix(lines[end], " = 0") {
			return true
		}
	}
	return false
}

// BenchmarkQueue4K queues a 4 KiB message through qmail-queued and by running
// bin/qmail-queue; cpu-ms/op counts the client, the service and qmail-queue
// processes (this process's and its reaped children's CPU, qmail-queued's from
// /proc).
func BenchmarkQueue4K(b *testing.B) {
	msg := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 64)
	rcpts := []string{"alice@sandbox.example"}
	for _, mode := range []string{"service", "exec"} {
		b.Run(mode, func(b *testing.B) {
			h := sandbox.New(b, sandbox.Options{})
			cf := h.QueueConfig()
			var s *service
			if mode == "service" {
				s = startService(b, h)
			} else {
				cf.Exec = true
			}
			b.SetBytes(int64(len(msg)))
			cpu0, svc0 := cpuTime(), s.cpuTime()
			for b.Loop() {
				if err := cf.Submit(bytes.NewReader(msg), "bob@example.org", rcpts); err != nil {
					b.Fatal(err)
				}
			}
			cpu := cpuTime() - cpu0 + s.cpuTime() - svc0
			b.ReportMetric(float64(cpu)/1e6/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime is this process's and its reaped children's CPU time in nanoseconds.
func cpuTime() int64 {
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	return self.Utime.Nano() + self.Stime.Nano() + kids.Utime.Nano() + kids.Stime.Nano()
}

// cpuTime is the running service's CPU time in nanoseconds, from /proc (utime and
// stime in clock ticks, 100 a second on Linux).
func (s *service) cpuTime() int64 {
	if s == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return (ut + st) * 1e7
}

// queuedBy returns the pid in the only queued message's Received line, and clears
// the queue.
func queuedBy(t *testing.T, h *sandbox.Home) string {
	t.Helper()
	_, mess, _ := only(t, h.Queue())
	clearQueue(t, h.Queue())
	m := receivedRE.FindStringSubmatch(mess)
	if m == nil {
		t.Fatalf("no Received line: %q", mess)
	}
	return m[1]
}

// TestClientFallbacks: the client runs bin/qmail-queue when the socket refuses
// connections (left by a dead service), when QMAILQUEUE is set or Config.Exec asks
// for it, and when the service closes the connection without its greeting.
func TestClientFallbacks(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	self := strconv.Itoa(os.Getpid())
	submit := func() {
		t.Helper()
		if err := h.Submit(strings.NewReader(msg), "bob@example.org", []string{"alice@sandbox.example"}); err != nil {
			t.Fatal(err)
		}
	}
	// A socket nobody listens on: connection refused.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: queued.SocketPath(h.Dir), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	submit()
	if pid := queuedBy(t, h); pid == self {
		t.Error("queued through a dead socket?")
	}
	// A listener that closes every connection at once, as a busy qmail-queued does.
	os.Remove(queued.SocketPath(h.Dir))
	l, err = net.ListenUnix("unix", &net.UnixAddr{Name: queued.SocketPath(h.Dir), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	submit()
	if pid := queuedBy(t, h); pid == self {
		t.Error("queued without a greeting?")
	}
	l.Close()

	startService(t, h)
	submit()
	if pid := queuedBy(t, h); pid != self {
		t.Errorf("Received pid %s: not through qmail-queued", pid)
	}
	cf := h.QueueConfig()
	cf.Exec = true
	if err := cf.Submit(strings.NewReader(msg), "bob@example.org", []string{"alice@sandbox.example"}); err != nil {
		t.Fatal(err)
	}
	if pid := queuedBy(t, h); pid == self {
		t.Error("Config.Exec: queued through qmail-queued")
	}
	t.Setenv("QMAILQUEUE", "bin/qmail-queue")
	submit()
	if pid := queuedBy(t, h); pid == self {
		t.Error("QMAILQUEUE set: queued through qmail-queued")
	}
}

// serveInProcess runs srv in this process on a new socket until the test ends, and
// returns the socket's path; Serve must then return without error.
func serveInProcess(t *testing.T, srv *queued.Server) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "sock")
	l, err := queued.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		l.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return sock
}

// TestConnectionCap: beyond MaxConns connections, a new one is closed without a
// greeting (its client runs qmail-queue); once one is done, new ones are served.
func TestConnectionCap(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	srv := &queued.Server{Queue: h.Queue(), QueueProgram: filepath.Join(h.Bin, "qmail-queue"), MaxConns: 1,
		Alias: -1, Qmaild: -1, Qmails: -1, Log: func(s string) { t.Log(s) }}
	sock := serveInProcess(t, srv)
	greet := func() (net.Conn, bool) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			c.Close()
			return nil, false
		}
		return c, b[0] == queued.Ready
	}
	c1, ok := greet()
	if !ok {
		t.Fatal("first connection not greeted")
	}
	if _, ok := greet(); ok {
		t.Fatal("second connection greeted beyond MaxConns 1")
	}
	io.WriteString(c1, "\x00\x00\x00\x02x\n\x00\x00\x00\x00Fbob@example.org\x00Talice@sandbox.example\x00\x00")
	var b [1]byte
	if _, err := io.ReadFull(c1, b[:]); err != nil || b[0] != 0 {
		t.Fatalf("answer %d %v", b[0], err)
	}
	c1.Close()
	for deadline := time.Now().Add(time.Minute); ; {
		if c, ok := greet(); ok {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection served after the first ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, mess, _ := only(t, h.Queue())
	if !strings.HasSuffix(mess, "\nx\n") {
		t.Errorf("mess %q", mess)
	}
}

// BenchmarkQueue4KConcurrent queues 4 KiB messages through qmail-queued from 10
// clients at once, as qmail-smtpd sessions would; cpu-ms/op counts the clients and
// the service, wall-ms/op is the elapsed time per message.
func BenchmarkQueue4KConcurrent(b *testing.B) {
	const clients = 10
	msg := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 64)
	rcpts := []string{"alice@sandbox.example"}
	h := sandbox.New(b, sandbox.Options{})
	cf := h.QueueConfig()
	s := startService(b, h)
	b.SetBytes(int64(len(msg)))
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	cpu0, svc0 := cpuTime(), s.cpuTime()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := cf.Submit(bytes.NewReader(msg), "bob@example.org", rcpts); err != nil {
				b.Error(err)
				return
			}
		}
	})
	wall := time.Since(start)
	cpu := cpuTime() - cpu0 + s.cpuTime() - svc0
	b.ReportMetric(float64(cpu)/1e6/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(wall.Microseconds())/1e3/float64(b.N), "wall-ms/op")
}

// scriptedSync is a group syncer whose calls fail as scripted: fail[i] for the ith
// call (from 0), success beyond the script. It counts its calls.
type scriptedSync struct {
	mu    sync.Mutex
	fail  []bool
	calls int
}

func (s *scriptedSync) Mark() groupsync.Mark { return 0 }

func (s *scriptedSync) SyncSince(groupsync.Mark) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.calls
	s.calls++
	if n < len(s.fail) && s.fail[n] {
		return syscall.EIO
	}
	return nil
}

// TestGroupSyncFailure queues through a Server whose group sync fails: when the sync
// before the todo/ link fails the client hears 53 and nothing is left in the queue;
// when the sync after the link fails the client hears 53 too, and the message stays
// queued (a possible duplicate, never a loss). With both succeeding, exactly two
// syncs are made for the message: none of the files is fsynced on its own.
func TestGroupSyncFailure(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fail   []bool
		code   int
		queued bool
	}{
		{"ok", nil, 0, true},
		{"before link", []bool{true}, queue.ExitWrite, false},
		{"after link", []bool{false, true}, queue.ExitWrite, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := sandbox.New(t, sandbox.Options{})
			q := h.Queue()
			sy := &scriptedSync{fail: tc.fail}
			var logged strings.Builder
			var logMu sync.Mutex
			srv := &queued.Server{Queue: q, QueueProgram: filepath.Join(h.Bin, "qmail-queue"),
				Alias: -1, Qmaild: -1, Qmails: -1, Sync: sy, Spares: queue.NewSpares(q),
				Log: func(s string) { logMu.Lock(); logged.WriteString(s + "\n"); logMu.Unlock() }}
			sock := serveInProcess(t, srv)
			c, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var b [1]byte
			if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != queued.Ready {
				t.Fatalf("greeting %q %v", b[0], err)
			}
			body := []byte("Subject: group commit\n\nbody\n")
			if err := queued.WriteChunk(c, body); err != nil {
				t.Fatal(err)
			}
			queued.WriteChunk(c, nil)
			io.WriteString(c, "Fbob@example.org\x00Talice@sandbox.example\x00\x00")
			if _, err := io.ReadFull(c, b[:]); err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if int(b[0]) != tc.code {
				t.Errorf("answer %d, want %d", b[0], tc.code)
			}
			if want := 2; tc.code == 0 && sy.calls != want {
				t.Errorf("%d group syncs for one message, want %d", sy.calls, want)
			}
			msgs := queuedMessages(t, q)
			if tc.queued {
				if len(msgs) != 1 {
					t.Fatalf("%d messages queued, want 1", len(msgs))
				}
				for _, m := range msgs {
					if !strings.HasSuffix(m[0], string(body)) || m[1] != "u"+strconv.Itoa(os.Getuid())+"\x00p"+strconv.Itoa(os.Getpid())+"\x00Fbob@example.org\x00Talice@sandbox.example\x00" {
						t.Errorf("queued message %q, envelope %q", m[0], m[1])
					}
				}
			} else if left := messageFiles(q); len(left) > 0 {
				t.Errorf("after a failed sync before the link the queue holds %v", left)
			}
			if tc.code != 0 {
				logMu.Lock()
				if !strings.Contains(logged.String(), "syncing") {
					t.Errorf("the failed sync was not logged: %q", logged.String())
				}
				logMu.Unlock()
			}
		})
	}
}

// sendRaw sends one message and its envelope on c in qmail-queued's framing and
// returns the bytes qmail-queued answers with before it closes or reaches want bytes.
func sendRaw(t *testing.T, c net.Conn, body, env string, want int) []byte {
	t.Helper()
	var b []byte
	hdr := make([]byte, 4)
	binary.BigEndian.PutUint32(hdr, uint32(len(body)))
	b = append(append(b, hdr...), body...)
	b = append(b, 0, 0, 0, 0)
	b = append(b, env...)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(time.Minute))
	got := make([]byte, want)
	n, _ := io.ReadFull(c, got)
	return got[:n]
}

// TestMessagesShareConnection: after a message it queued, qmail-queued greets again
// and queues the next message sent on the same connection; after a failure, or once
// bin/qmail-queue has been replaced, it closes instead.
func TestMessagesShareConnection(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	startService(t, h)
	q := h.Queue()
	c := dialService(t, h)
	defer c.Close()
	env := "Fbob@example.org\x00Talice@sandbox.example\x00\x00"
	for i := range 3 {
		if got := sendRaw(t, c, msg, env, 2); string(got) != "\x00Q" {
			t.Fatalf("message %d: answer %q, want exit 0 and a new greeting", i, got)
		}
	}
	if got := queuedMessages(t, q); len(got) != 3 {
		t.Fatalf("%d messages queued, want 3", len(got))
	}
	// A bad envelope fails with its code, and then the connection ends.
	if got := sendRaw(t, c, msg, "Xbad\x00\x00", 2); len(got) != 1 || got[0] != queue.ExitEnvelope {
		t.Errorf("bad envelope: answer %q, want exit %d and the end", got, queue.ExitEnvelope)
	}

	// Replaced while a connection waits for its next message: that message is refused
	// for now (a temporary code), not queued behind the replacement's back.
	clearQueue(t, q)
	c2 := dialService(t, h)
	defer c2.Close()
	if got := sendRaw(t, c2, msg, env, 2); string(got) != "\x00Q" {
		t.Fatalf("answer %q, want exit 0 and a new greeting", got)
	}
	seen := replaceQueue(t, h)
	if got := sendRaw(t, c2, msg, env, 2); len(got) != 1 || got[0] != 71 {
		t.Errorf("after the replacement: answer %q, want exit 71 and the end", got)
	}
	if got := queuedMessages(t, q); len(got) != 1 {
		t.Errorf("%d messages queued, want only the one before the replacement", len(got))
	}
	// A client's next message then goes through the replacement.
	if err := h.Submit(strings.NewReader(msg), "bob@example.org", []string{"alice@sandbox.example"}); err != nil {
		t.Fatal(err)
	}
	if got := filterSaw(t, seen); len(got) != 1 {
		t.Errorf("filter saw %d messages, want 1", len(got))
	}
}

// TestKeptConnectionsDoNotHoldUpShutdown: connections waiting for a next message are
// closed when qmail-queued stops, at once, and the client's next message still
// gets queued (on a new connection, or by bin/qmail-queue).
func TestKeptConnectionsDoNotHoldUpShutdown(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	s := startService(t, h)
	self := strconv.Itoa(os.Getpid())
	for range 2 {
		if err := h.Submit(strings.NewReader(msg), "bob@example.org", []string{"alice@sandbox.example"}); err != nil {
			t.Fatal(err)
		}
		if pid := queuedBy(t, h); pid != self {
			t.Fatalf("Received pid %s: not through qmail-queued", pid)
		}
	}
	// The client keeps its connection now; stop must not wait for it (stop fails the
	// test after a minute, ReuseIdle).
	s.stop(t)
	select {
	case <-s.done:
	default:
		t.Fatal("qmail-queued still running after stop")
	}
	if err := h.Submit(strings.NewReader(msg), "bob@example.org", []string{"alice@sandbox.example"}); err != nil {
		t.Fatalf("next message after qmail-queued stopped: %v", err)
	}
	if pid := queuedBy(t, h); pid == self {
		t.Error("queued through a stopped qmail-queued?")
	}
	startService(t, h)
	if err := h.Submit(strings.NewReader(msg), "bob@example.org", []string{"alice@sandbox.example"}); err != nil {
		t.Fatal(err)
	}
	if pid := queuedBy(t, h); pid != self {
		t.Errorf("Received pid %s: not through the restarted qmail-queued", pid)
	}
}

// TestClientReusesConnection: a process queueing one message after another keeps its
// connection to qmail-queued. With room for one connection only, every message still
// goes through qmail-queued, which a new connection per message would not (the next
// would be turned away while the kept one waits).
func TestClientReusesConnection(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	srv := &queued.Server{Queue: h.Queue(), QueueProgram: filepath.Join(h.Bin, "qmail-queue"), MaxConns: 1,
		Alias: -1, Qmaild: -1, Qmails: -1, Log: func(s string) { t.Log(s) }}
	l, err := queued.Listen(queued.SocketPath(h.Dir))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	self := strconv.Itoa(os.Getpid())
	for i := range 3 {
		if err := h.Submit(strings.NewReader(msg), "bob@example.org", []string{"alice@sandbox.example"}); err != nil {
			t.Fatal(err)
		}
		if pid := queuedBy(t, h); pid != self {
			t.Errorf("message %d: Received pid %s, not through qmail-queued", i, pid)
		}
	}
	// The kept connection must not hold up Serve's return.
	l.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve still waiting for a kept connection")
	}
}
