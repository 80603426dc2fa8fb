package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/sandbox"
)

// started is a qmail-queue process with its two input pipes.
type started struct {
	cmd      *exec.Cmd
	msg, env *os.File
	stderr   bytes.Buffer
}

func start(t *testing.T, cmd *exec.Cmd) *started {
	t.Helper()
	mr, mw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	er, ew, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &started{cmd: cmd, msg: mw, env: ew}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = mr, er, &s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	mr.Close()
	er.Close()
	return s
}

// feed feeds a whole message and envelope and returns the exit code.
func feed(t *testing.T, cmd *exec.Cmd, msg, env string) int {
	t.Helper()
	s := start(t, cmd)
	go func() {
		io.WriteString(s.msg, msg)
		s.msg.Close()
	}()
	io.WriteString(s.env, env)
	s.env.Close()
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func TestQueuesAndReportsCaller(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{Split: 5})
	cmd := h.Command("qmail-queue")
	if code := feed(t, cmd, "Subject: t\n\nbody\n", "Fa@b\x00Tc@sandbox.example\x00\x00"); code != 0 {
		t.Fatalf("exit %d", code)
	}
	q := h.Queue()
	ids, err := q.Todo()
	if err != nil || len(ids) != 1 {
		t.Fatalf("todo %v %v", ids, err)
	}
	mess, _ := os.ReadFile(q.Path("mess", ids[0]))
	prefix := fmt.Sprintf("Received: (qmail %d invoked by uid %d); ", cmd.Process.Pid, h.UID)
	if !strings.HasPrefix(string(mess), prefix) {
		t.Errorf("message %q, want prefix %q", mess, prefix)
	}
	for _, p := range []string{q.Path("mess", ids[0]), q.Path("todo", ids[0])} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0644 {
			t.Errorf("%s: %v %v, want mode 0644", p, fi.Mode(), err)
		}
	}
}

func TestExitCodes(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{Split: 3})
	env := "Fa@b\x00Tc@d\x00\x00"

	// QMAILHOME missing: 61.
	cmd := h.Command("qmail-queue")
	cmd.Env = append(cmd.Env, "QMAILHOME="+filepath.Join(h.Dir, "nonexistent"))
	cmd.Dir = "/"
	if code := feed(t, cmd, "m\n", env); code != queue.ExitHome {
		t.Errorf("missing home: exit %d, want 61", code)
	}
	// Envelope errors.
	for in, want := range map[string]int{
		"Fa@b\x00Tc@d\x00": queue.ExitRead,
		"Xa@b\x00\x00":     queue.ExitEnvelope,
		"F" + strings.Repeat("x", 2000) + "\x00\x00": queue.ExitAddrTooLong,
	} {
		if code := feed(t, h.Command("qmail-queue"), "m\n", in); code != want {
			t.Errorf("envelope %.20q: exit %d, want %d", in, code, want)
		}
	}
	// File size limit: the write fails (SIGXFSZ is ignored), 53, and nothing is left.
	cmd = h.Command("/bin/sh", "-c", "ulimit -f 4 && exec qmail-queue")
	cmd.Path = "/bin/sh"
	if code := feed(t, cmd, strings.Repeat("x", 100000), env); code != queue.ExitWrite {
		t.Errorf("file size limit: exit %d, want 53", code)
	}
	q := h.Queue()
	for _, d := range []string{"todo", "intd", "pid"} {
		if ents, _ := os.ReadDir(filepath.Join(q.Dir, d)); len(ents) != 0 {
			t.Errorf("%s not empty after failures: %v", d, ents)
		}
	}
	filepath.WalkDir(filepath.Join(q.Dir, "mess"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("left behind %s", p)
		}
		return nil
	})
	// Queue directory missing: 62.
	if err := os.Rename(q.Dir, q.Dir+".away"); err != nil {
		t.Fatal(err)
	}
	if code := feed(t, h.Command("qmail-queue"), "m\n", env); code != queue.ExitQueueDir {
		t.Errorf("missing queue: exit %d, want 62", code)
	}
	os.Rename(q.Dir+".away", q.Dir)
}

// TestCrashSafety kills qmail-queue with SIGKILL at random moments, hundreds of times,
// while it is fed slowly, and then checks the queue: every message whose qmail-queue
// exited 0 is in todo/ complete, and everything in todo/ is a complete message with a
// valid envelope (a kill after the link to todo/ may leave a complete message that was
// never acknowledged, as in qmail; never a partial one).
func TestCrashSafety(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{Split: 7})
	rounds := 300
	if testing.Short() {
		rounds = 60
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 17))

	bodies := make([]string, rounds)
	accepted := make([]bool, rounds)
	var warmup []time.Duration // how long the first, unkilled rounds took
	var span time.Duration     // kills fall within [0, span)
	killed := 0
	for i := 0; i < rounds; i++ {
		var b strings.Builder
		fmt.Fprintf(&b, "Subject: round %d\n\n", i)
		for n := rng.IntN(400); n >= 0; n-- {
			fmt.Fprintf(&b, "line %d of round %d\n", n, i)
		}
		bodies[i] = b.String()
		env := fmt.Sprintf("Fs%d@example.org\x00Tr%d@sandbox.example\x00Tx%d@example.net\x00\x00", i, i, i)

		cmd := h.Command("qmail-queue")
		s := start(t, cmd)
		chunks := 1 + rng.IntN(8)
		pause := time.Duration(rng.IntN(300)) * time.Microsecond
		go func() {
			defer s.msg.Close()
			body := bodies[i]
			for c := 0; c < chunks; c++ {
				end := len(body) * (c + 1) / chunks
				if _, err := io.WriteString(s.msg, body[len(body)*c/chunks:end]); err != nil {
					return
				}
				time.Sleep(pause)
			}
		}()
		go func() {
			defer s.env.Close()
			half := len(env) / 2
			if _, err := io.WriteString(s.env, env[:half]); err != nil {
				return
			}
			time.Sleep(pause)
			io.WriteString(s.env, env[half:])
		}()
		// The first rounds run to completion to learn how long a run takes; later
		// ones are killed at a random moment within that span (or not at all).
		began := time.Now()
		if i == 10 {
			// The median, not the maximum: the first runs pay for cold caches.
			slices.Sort(warmup)
			span = warmup[len(warmup)/2] * 3 / 2
		}
		if i >= 10 && rng.IntN(5) != 0 {
			delay := time.Duration(rng.Int64N(int64(span) + 1))
			time.AfterFunc(delay, func() { cmd.Process.Kill() })
		}
		err := cmd.Wait()
		if err == nil {
			accepted[i] = true
			if i < 10 {
				warmup = append(warmup, time.Since(began))
			}
		} else if ee, ok := err.(*exec.ExitError); ok && !ee.Exited() {
			killed++
		} else if i < 10 {
			t.Fatalf("round %d: %v; %s", i, err, s.stderr.String())
		}
	}

	q := h.Queue()
	ids, err := q.Todo()
	if err != nil {
		t.Fatal(err)
	}
	inTodo := map[int]bool{}
	for _, id := range ids {
		env, err := q.ReadEnvelope(id)
		if err != nil {
			t.Errorf("todo/%d: %v", id, err)
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(env.Sender, "s"), "@example.org"))
		if err != nil || n < 0 || n >= rounds {
			t.Errorf("todo/%d: unknown sender %q", id, env.Sender)
			continue
		}
		if inTodo[n] {
			t.Errorf("round %d queued twice", n)
		}
		inTodo[n] = true
		want := []string{fmt.Sprintf("r%d@sandbox.example", n), fmt.Sprintf("x%d@example.net", n)}
		if strings.Join(env.Recipients, ",") != strings.Join(want, ",") {
			t.Errorf("todo/%d: recipients %q", id, env.Recipients)
		}
		mess, err := os.ReadFile(q.Path("mess", id))
		if err != nil {
			t.Errorf("todo/%d without its message: %v", id, err)
			continue
		}
		nl := bytes.IndexByte(mess, '\n')
		if nl < 0 || !bytes.HasPrefix(mess, []byte("Received: (qmail ")) || string(mess[nl+1:]) != bodies[n] {
			t.Errorf("todo/%d: message of round %d is incomplete (%d bytes)", id, n, len(mess))
		}
	}
	acc := 0
	for i, ok := range accepted {
		if ok {
			acc++
			if !inTodo[i] {
				t.Errorf("round %d: qmail-queue exited 0 but the message is not in todo/", i)
			}
		}
	}
	orphans := 0
	filepath.WalkDir(filepath.Join(q.Dir, "mess"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if id, err := strconv.ParseUint(d.Name(), 10, 64); err == nil {
				if _, err := os.Stat(q.Path("todo", id)); err != nil {
					orphans++
				}
			}
		}
		return nil
	})
	t.Logf("%d rounds: %d accepted, %d killed, %d in todo/, %d killed mid-way leaving mess without todo",
		rounds, acc, killed, len(ids), orphans)
	if acc == 0 || killed == 0 {
		t.Errorf("the test did not exercise both outcomes: %d accepted, %d killed", acc, killed)
	}
}

// Installed setuid, qmail-queue must not let its caller choose the queue through
// QMAILHOME: it uses the compiled-in /var/qmail.
func TestSetuidIgnoresQMAILHOME(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a setuid binary for another user")
	}
	if _, err := os.Stat("/var/qmail"); err == nil {
		t.Skip("/var/qmail exists here; the test needs it absent to see where qmail-queue goes")
	}
	h := sandbox.New(t, sandbox.Options{Split: 3})
	dir, err := os.MkdirTemp("", "qq-setuid-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0755)
	b, err := os.ReadFile(filepath.Join(h.Bin, "qmail-queue"))
	if err != nil {
		t.Fatal(err)
	}
	qq := filepath.Join(dir, "qmail-queue")
	if err := os.WriteFile(qq, b, 0755); err != nil {
		t.Fatal(err)
	}
	// setuid to the sandbox owner: the uid that owns the queue it is pointed at.
	if err := os.Chown(qq, h.UID, h.GID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(qq, 0711|fs.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(qq)
	cmd.Env = h.Env()
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 54321, Gid: 54321}}
	code := feed(t, cmd, "m\n", "Fa@b\x00Tc@d\x00\x00")
	if code == 0 {
		t.Fatal("setuid qmail-queue queued into the caller's QMAILHOME")
	}
	if code != queue.ExitHome {
		t.Errorf("exit %d, want 61 (no /var/qmail)", code)
	}
	if ids, _ := h.Queue().Todo(); len(ids) != 0 {
		t.Errorf("queued into QMAILHOME: %v", ids)
	}
}

// Many qmail-queue processes at once each get their own id and file names.
func TestConcurrentQueueing(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{Split: 5})
	const workers, each = 8, 10
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		go func() {
			for i := 0; i < each; i++ {
				errs <- h.Submit(strings.NewReader(fmt.Sprintf("Subject: %d/%d\n\nx\n", w, i)),
					fmt.Sprintf("w%d@example.org", w), []string{fmt.Sprintf("m%d@sandbox.example", i)})
			}
		}()
	}
	for n := 0; n < workers*each; n++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	q := h.Queue()
	ids, err := q.Todo()
	if err != nil || len(ids) != workers*each {
		t.Fatalf("todo holds %d messages (%v), want %d", len(ids), err, workers*each)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		env, err := q.ReadEnvelope(id)
		if err != nil {
			t.Fatal(err)
		}
		mess, err := os.ReadFile(q.Path("mess", id))
		if err != nil {
			t.Fatal(err)
		}
		key := env.Sender + " " + env.Recipients[0]
		if seen[key] {
			t.Errorf("%s queued twice", key)
		}
		seen[key] = true
		w := strings.TrimSuffix(strings.TrimPrefix(env.Sender, "w"), "@example.org")
		i := strings.TrimSuffix(strings.TrimPrefix(env.Recipients[0], "m"), "@sandbox.example")
		if !strings.Contains(string(mess), "\nSubject: "+w+"/"+i+"\n") {
			t.Errorf("message %d does not match its envelope %q: %q", id, key, mess)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(q.Dir, "pid")); len(ents) != 0 {
		t.Errorf("pid/ not empty: %v", ents)
	}
}

// SIGALRM ends qmail-queue with 52 (timeout), as qmail's alarm does, leaving the
// queue as it was: no message in todo/.
func TestAlarmIsTimeout(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{Split: 3})
	cmd := h.Command("qmail-queue")
	s := start(t, cmd)
	io.WriteString(s.msg, "Subject: slow\n\n") // and then nothing: it waits for more
	// Wait until it has made its message file, so the signal handler is in place.
	q := h.Queue()
	guard := time.Now().Add(time.Minute)
	for {
		n := 0
		filepath.WalkDir(filepath.Join(q.Dir, "mess"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		if n > 0 {
			break
		}
		if time.Now().After(guard) { // a hang guard, not a performance expectation
			cmd.Process.Kill()
			t.Fatalf("qmail-queue made no message file: %s", s.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGALRM)
	err := cmd.Wait()
	s.msg.Close()
	s.env.Close()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != queue.ExitTimeout {
		t.Fatalf("after SIGALRM: %v, want exit 52", err)
	}
	if ids, _ := q.Todo(); len(ids) != 0 {
		t.Errorf("todo: %v", ids)
	}
}
