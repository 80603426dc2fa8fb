package e2e

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
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/sandbox"
)

// What the test does to one qmail-queue run.
type fate int

const (
	feedAll   fate = iota // feed the whole input and let it finish: it must exit 0
	killEarly             // SIGKILL while part of its input is still held back
	killLate              // feed everything, then SIGKILL at a random moment
)

// crashMsg is one message handed to qmail-queue, told apart by its token.
type crashMsg struct {
	token    string
	body     string // everything after the Subject line's newline
	fate     fate
	accepted bool // qmail-queue exited 0
}

func (m *crashMsg) message() string { return "Subject: " + m.token + "\n" + m.body }

func (m *crashMsg) envelope(domain string) string {
	return "F" + m.token + "@far.example\x00Talice@" + domain + "\x00\x00"
}

// runQueue runs one qmail-queue on m with its fate; span bounds a late kill's delay.
// It returns how long a run that was not killed took.
func runQueue(t *testing.T, h *sandbox.Home, rng *rand.Rand, m *crashMsg, span time.Duration) time.Duration {
	t.Helper()
	mr, mw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	er, ew, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := h.Command("qmail-queue")
	// The message on fd 0 and the envelope on fd 1, both read by qmail-queue.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = mr, er, &stderr
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	mr.Close()
	er.Close()
	input := m.message() + m.envelope(h.Domain)
	msgLen := len(m.message())
	var upTo int // bytes of input to write before the kill (killEarly)
	switch m.fate {
	case killEarly: // never the envelope's final NUL
		switch rng.IntN(4) {
		case 0: // within the message
			upTo = rng.IntN(msgLen + 1)
		case 1: // the message and no envelope
			upTo = msgLen
		case 2: // within the envelope
			upTo = msgLen + rng.IntN(len(input)-msgLen)
		default: // all but the final NUL: every record complete
			upTo = len(input) - 1
		}
	default:
		upTo = len(input)
	}
	// The pipes hold far more than a message here, so the writes never block.
	if upTo <= msgLen {
		io.WriteString(mw, input[:upTo])
	} else {
		io.WriteString(mw, input[:msgLen])
		mw.Close()
		io.WriteString(ew, input[msgLen:upTo])
	}
	if m.fate == feedAll || m.fate == killLate {
		mw.Close()
		ew.Close()
	}
	switch m.fate {
	case killEarly:
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		cmd.Process.Kill()
	case killLate:
		time.AfterFunc(time.Duration(rng.Int64N(int64(span)+1)), func() { cmd.Process.Kill() })
	}
	err = cmd.Wait()
	took := time.Since(began)
	mw.Close()
	ew.Close()
	var ee *exec.ExitError
	switch {
	case err == nil:
		m.accepted = true
		if m.fate == killEarly {
			t.Fatalf("%s: qmail-queue exited 0 without its whole input", m.token)
		}
	case errors.As(err, &ee) && !ee.Exited() && m.fate != feedAll:
		// killed
	default:
		t.Fatalf("%s (fate %d): qmail-queue: %v: %s", m.token, m.fate, err, stderr.String())
	}
	return took
}

// queueFiles lists the files left in a queue directory's subdirectory (split or not).
func queueFiles(dir string) []string {
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	return files
}

var tokenRE = regexp.MustCompile(`(?m)^Subject: (crash-[0-9]+-[0-9]+)$`)

// TestCrashSafetyQueueAndSend kills qmail-queue and qmail-send with SIGKILL at random
// points, hundreds of rounds, while mail flows, and then lets the MTA finish:
//
//   - every message whose qmail-queue exited 0 is delivered, complete, at least once;
//   - no message whose qmail-queue was killed while part of its input was still held
//     back (so it cannot have committed it) is delivered or left in the queue;
//   - a message whose qmail-queue was killed after getting all of its input may or may
//     not be delivered (a kill between the link into todo/ and the exit leaves a queued
//     message that was never acknowledged, as in qmail), but never partially;
//   - in the end the queue is empty: the files killed qmail-queue processes leave
//     behind are removed by qmail-send's and qmail-clean's 36-hour cleanups, made due by
//     setting the files' access times back.
//
// Each round queues two messages with random fates while a freshly started
// qmail-start runs, then kills qmail-send alone or the whole MTA (qmail-lspawn and
// qmail-local with it) at a random moment.
func TestCrashSafetyQueueAndSend(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{Domain: domain, Users: []string{"alice"}})
	needDaemons(t, h)
	rounds, perRound := 300, 2
	if testing.Short() {
		rounds = 60
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	log := &sandbox.Log{}
	began := time.Now()

	var msgs []*crashMsg
	var durations []time.Duration // of qmail-queue runs that were not killed
	span := 5 * time.Millisecond
	sendKills, groupKills := 0, 0
	for r := 0; r < rounds; r++ {
		// If the test ends while it runs (a failure), its whole group is killed, so that
		// no daemon outlives the test.
		m := h.StartMTA(t, sandbox.MTAOptions{Log: log, Guard: guard})
		for i := 0; i < perRound; i++ {
			var body strings.Builder
			body.WriteString("\n")
			for n := rng.IntN(100); n >= 0; n-- {
				fmt.Fprintf(&body, "line %d of crash-%d-%d\n", n, r, i)
			}
			cm := &crashMsg{token: fmt.Sprintf("crash-%d-%d", r, i), body: body.String(), fate: fate(rng.IntN(3))}
			if r < 5 {
				cm.fate = feedAll // learn how long a run takes
			}
			took := runQueue(t, h, rng, cm, span)
			if cm.fate == feedAll {
				durations = append(durations, took)
				if len(durations)%8 == 0 { // the median, as the first runs pay for cold caches
					d := slices.Clone(durations)
					slices.Sort(d)
					span = d[len(d)/2] * 3 / 2
				}
			}
			msgs = append(msgs, cm)
		}
		time.Sleep(time.Duration(rng.IntN(30000)) * time.Microsecond)
		if pid := m.SendPID(); pid > 0 && rng.IntN(2) == 0 {
			syscall.Kill(pid, syscall.SIGKILL)
			sendKills++
			m.Wait()
		} else {
			m.Kill()
			groupKills++
		}
	}
	t.Logf("%d rounds in %v: qmail-send killed alone %d times, with the whole MTA %d times",
		rounds, time.Since(began), sendKills, groupKills)

	// The files a killed qmail-queue or qmail-send left behind: mess/ and intd/ files
	// of no queued message, and pid/ files. Make them 36 hours old for the cleanups.
	q := h.Queue()
	old := time.Now().Add(-37 * time.Hour)
	stale := 0
	for _, sub := range []string{"mess", "intd", "pid"} {
		for _, p := range queueFiles(filepath.Join(q.Dir, sub)) {
			id, err := strconv.ParseUint(filepath.Base(p), 10, 64)
			if sub != "pid" {
				if err != nil {
					t.Errorf("strange file %s", p)
					continue
				}
				if _, err := os.Stat(q.Path("todo", id)); err == nil {
					continue
				}
				if _, err := os.Stat(q.Path("info", id)); err == nil {
					continue
				}
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, old, fi.ModTime()); err != nil {
				t.Fatal(err)
			}
			stale++
		}
	}

	finalStart := time.Now()
	m := h.StartMTA(t, sandbox.MTAOptions{Log: log, Guard: guard})
	// Wait until the queue is empty: every delivery is made before its message leaves
	// info/, so then the Maildir holds everything that will ever arrive.
	deadline := time.Now().Add(guard)
	for polls := 1; ; polls++ {
		var left []string
		for _, sub := range []string{"todo", "intd", "pid", "mess", "info", "local", "remote", "bounce"} {
			left = append(left, queueFiles(filepath.Join(q.Dir, sub))...)
		}
		if len(left) == 0 {
			break
		}
		m.Running()
		if time.Now().After(deadline) {
			t.Fatalf("after %v, left in the queue: %q\nlog:\n%s", guard, left, log.String())
		}
		if polls%20 == 0 {
			// A safety net: qmail-send tries every message at startup anyway.
			m.Signal(syscall.SIGALRM)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the final run delivered the rest and cleaned the queue in %v", time.Since(finalStart))
	if err := m.Stop(); err != nil {
		t.Errorf("qmail-start after SIGTERM: %v", err)
	}

	// What arrived: each delivery is a whole message of this test, and the accounting.
	byToken := map[string]*crashMsg{}
	for _, cm := range msgs {
		byToken[cm.token] = cm
	}
	count := map[string]int{}
	deliveries := maildirFiles(t, h.Maildir("alice"))
	for _, d := range deliveries {
		s := tokenRE.FindStringSubmatch(d)
		if s == nil {
			t.Errorf("a delivery of no message of this test:\n%s", d)
			continue
		}
		cm := byToken[s[1]]
		count[s[1]]++
		if cm == nil || !strings.HasSuffix(d, "\nSubject: "+cm.token+"\n"+cm.body) {
			t.Errorf("%s delivered incomplete or altered:\n%s", s[1], d)
		}
	}
	var n [3]int
	lateQueued, dups := 0, 0
	for _, cm := range msgs {
		n[cm.fate]++
		c := count[cm.token]
		if c > 1 {
			dups++
		}
		switch {
		case cm.accepted && c == 0:
			t.Errorf("%s: accepted by qmail-queue, never delivered", cm.token)
		case cm.fate == killEarly && c > 0:
			t.Errorf("%s: qmail-queue was killed before it had its whole input, yet it was delivered %d times", cm.token, c)
		case cm.fate == killLate && !cm.accepted && c > 0:
			lateQueued++
		}
	}
	if l := log.String(); strings.Contains(l, ": failure: ") {
		t.Errorf("a delivery failed permanently:\n%s", l)
	}
	tmp, _ := os.ReadDir(filepath.Join(h.Maildir("alice"), "tmp"))
	acc := 0
	for _, cm := range msgs {
		if cm.accepted {
			acc++
		}
	}
	t.Logf("%d messages: %d fed whole, %d killed early, %d killed late; %d accepted, "+
		"%d killed late yet queued; %d deliveries, %d messages delivered more than once; "+
		"%d stale queue files cleaned; %d partial files in Maildir/tmp; %v in all",
		len(msgs), n[feedAll], n[killEarly], n[killLate], acc, lateQueued, len(deliveries), dups,
		stale, len(tmp), time.Since(began))
	if n[killEarly] == 0 || n[killLate] == 0 || groupKills == 0 || sendKills == 0 {
		t.Errorf("the random kills missed a case: %v, %d+%d MTA kills", n, sendKills, groupKills)
	}
}
