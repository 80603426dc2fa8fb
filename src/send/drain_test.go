package send

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/sandbox"
)

// TestDrainBacklog is a measuring harness, not a check of speed: with
// NOTQMAIL_SEND_DRAIN=N it queues N messages to a local Maildir while no qmail-send
// runs (queue.Enqueue straight into a sandbox queue), starts the whole MTA (real
// qmail-lspawn, qmail-local and qmail-clean) and logs the delivery rate per window of
// NOTQMAIL_SEND_DRAIN_WINDOW messages (default N/10), and qmail-send's CPU time and
// peak RSS. It asserts only that every message is delivered exactly once and the queue
// ends empty. With NOTQMAIL_SEND_DRAIN_STRACE=FILE it also counts qmail-send's system
// calls with strace -f -c -o FILE from the first fifth of the messages on, past the
// start-up work, and logs how many messages the count covers.
func TestDrainBacklog(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("NOTQMAIL_SEND_DRAIN"))
	if n <= 0 {
		t.Skip("set NOTQMAIL_SEND_DRAIN=N to measure draining N held messages")
	}
	window, _ := strconv.Atoi(os.Getenv("NOTQMAIL_SEND_DRAIN_WINDOW"))
	if window <= 0 {
		window = max(n/10, 1)
	}
	h := sandbox.New(t, sandbox.Options{})
	q := h.Queue()
	msg := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 64)
	msg = append([]byte("Subject: drain\n\n"), msg...)
	env := "Fbench@example.org\x00Talice@" + h.Domain + "\x00\x00"
	start := time.Now()
	for i := 0; i < n; i++ {
		c := queue.Caller{UID: 7, PID: 100000 + i, Invoked: "by uid 7", Time: time.Now()}
		if err := queue.Enqueue(q, bytes.NewReader(msg), strings.NewReader(env), c); err != nil {
			t.Fatal(err)
		}
	}
	// Queued as root for a home owned by the sandbox user: give the files to it.
	if os.Geteuid() == 0 {
		filepath.Walk(q.Dir, func(p string, fi os.FileInfo, err error) error {
			if err == nil {
				os.Lchown(p, h.UID, h.GID)
			}
			return nil
		})
	}
	t.Logf("queued %d messages in %v", n, time.Since(start).Round(time.Millisecond))

	mta := h.StartMTA(t, sandbox.MTAOptions{Guard: time.Hour})
	var sendPID int
	mta.WaitFor("qmail-send", func() bool { sendPID = mta.SendPID(); return sendPID != 0 })
	straceOut := os.Getenv("NOTQMAIL_SEND_DRAIN_STRACE")
	var strace *exec.Cmd
	straceFrom := 0
	log := mta.Log()
	var stages *stageTimes
	if os.Getenv("NOTQMAIL_SEND_DRAIN_STAGES") != "" {
		stages = newStageTimes()
	}
	t0 := time.Now()
	last, lastDone := t0, 0
	done, off := 0, 0
	var cpuUsed, mtaCPU time.Duration
	loops := 0
	var rss string
	deadline := t0.Add(time.Hour)
	for done < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d delivered after an hour", done, n)
		}
		time.Sleep(20 * time.Millisecond)
		s := log.Since(off)
		if i := strings.LastIndexByte(s, '\n'); i >= 0 {
			s = s[:i+1]
			off += len(s)
			done += strings.Count(s, "end msg ")
			if stages != nil {
				stages.lines(s, time.Now())
			}
		}
		cpuUsed, rss = procUsage(sendPID)
		if loops++; loops%25 == 0 || done >= n {
			if c := treeCPU(ppidOf(sendPID)); c > 0 {
				mtaCPU = c
			}
		}
		if straceOut != "" && strace == nil && done >= n/5 {
			strace = exec.Command("strace", "-f", "-c", "-o", straceOut, "-p", strconv.Itoa(sendPID))
			if err := strace.Start(); err != nil {
				t.Fatal(err)
			}
			straceFrom = done
		}
		for done-lastDone >= window || done >= n && done > lastDone {
			now := time.Now()
			k := min(window, done-lastDone)
			t.Logf("messages %6d-%6d: %7.0f msg/s", lastDone+1, lastDone+k, float64(k)/now.Sub(last).Seconds())
			last, lastDone = now, lastDone+k
		}
	}
	el := time.Since(t0)
	if strace != nil {
		// strace writes its summary when stopped.
		strace.Process.Signal(os.Interrupt)
		strace.Wait()
		t.Logf("strace -c of qmail-send in %s covers %d messages", straceOut, n-straceFrom)
	}
	t.Logf("drained %d in %v: %.0f msg/s; qmail-send CPU %v (%.3f ms/msg), peak RSS %s",
		n, el.Round(time.Millisecond), float64(n)/el.Seconds(), cpuUsed.Round(time.Millisecond),
		float64(cpuUsed.Microseconds())/1000/float64(n), rss)
	if stages != nil {
		stages.report(t)
	}
	t.Logf("all of the MTA's processes (qmail-start's tree): CPU %v (%.3f ms/msg)",
		mtaCPU.Round(time.Millisecond), float64(mtaCPU.Microseconds())/1000/float64(n))
	if strings.Contains(log.String(), "alert:") {
		t.Errorf("alerts in the log:\n%s", grepLines(log.String(), "alert:"))
	}
	mta.WaitFor("an empty queue", h.QueueEmpty)
	msgs, err := h.Messages("alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != n {
		t.Errorf("%d messages in the Maildir, want %d", len(msgs), n)
	}
}

// procUsage returns a process's user+system CPU time and its peak RSS (VmHWM).
func procUsage(pid int) (time.Duration, string) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "?"
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, "?"
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	cpu := time.Duration(ut+st) * time.Second / hz
	rss := "?"
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(st), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				rss = strings.Join(strings.Fields(l)[1:], " ")
			}
		}
	}
	return cpu, rss
}

// stageTimes follows messages through qmail-send's log (with NOTQMAIL_SEND_DRAIN_STAGES
// set), timed when the harness reads the lines (every 20 ms), to show where messages
// wait: from "info msg" (preprocessed) to "starting delivery" (qmail-clean's todo/
// answer and the wait for a delivery slot), the delivery itself, and from its end to
// "end msg".
type stageTimes struct {
	info, start, ended map[uint64]time.Time
	delMsg             map[uint64]uint64 // delivery id -> message id
	sum                [3]time.Duration
	cnt                [3]int
	inFlight, peak     int
	flightSum, samples int
}

func newStageTimes() *stageTimes {
	return &stageTimes{info: map[uint64]time.Time{}, start: map[uint64]time.Time{},
		ended: map[uint64]time.Time{}, delMsg: map[uint64]uint64{}}
}

func (st *stageTimes) add(i int, d time.Duration) { st.sum[i] += d; st.cnt[i]++ }

func (st *stageTimes) lines(s string, now time.Time) {
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		for i, w := range f {
			// Log lines may carry a prefix (a timestamp); find the event word.
			rest := f[i:]
			switch {
			case w == "info" && len(rest) > 2 && rest[1] == "msg":
				id, _ := strconv.ParseUint(strings.TrimSuffix(rest[2], ":"), 10, 64)
				st.info[id] = now
			case w == "starting" && len(rest) > 4 && rest[1] == "delivery":
				d, _ := strconv.ParseUint(strings.TrimSuffix(rest[2], ":"), 10, 64)
				id, _ := strconv.ParseUint(rest[4], 10, 64)
				st.delMsg[d] = id
				if t, ok := st.info[id]; ok {
					st.add(0, now.Sub(t))
				}
				st.start[id] = now
				st.inFlight++
			case w == "delivery" && len(rest) > 2 && (rest[2] == "success:" || rest[2] == "deferral:" || rest[2] == "failure:"):
				d, _ := strconv.ParseUint(strings.TrimSuffix(rest[1], ":"), 10, 64)
				id := st.delMsg[d]
				delete(st.delMsg, d)
				if t, ok := st.start[id]; ok {
					st.add(1, now.Sub(t))
				}
				st.ended[id] = now
				st.inFlight--
			case w == "end" && len(rest) > 2 && rest[1] == "msg":
				id, _ := strconv.ParseUint(rest[2], 10, 64)
				if t, ok := st.ended[id]; ok {
					st.add(2, now.Sub(t))
				}
				delete(st.info, id)
				delete(st.start, id)
				delete(st.ended, id)
			default:
				continue
			}
			break
		}
	}
	st.peak = max(st.peak, st.inFlight)
	st.flightSum += st.inFlight
	st.samples++
}

func (st *stageTimes) report(t *testing.T) {
	names := []string{"info msg -> starting delivery", "delivery", "delivery done -> end msg"}
	for i, n := range names {
		if st.cnt[i] > 0 {
			t.Logf("stage %-30s mean %v over %d", n, (st.sum[i] / time.Duration(st.cnt[i])).Round(time.Millisecond/10), st.cnt[i])
		}
	}
	if st.samples > 0 {
		t.Logf("deliveries in flight: mean %.1f, peak %d", float64(st.flightSum)/float64(st.samples), st.peak)
	}
}

// ppidOf returns a process's parent's pid, or 0.
func ppidOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// treeCPU returns the CPU time of root and its living descendants, with the time of
// their waited-for children.
func treeCPU(root int) time.Duration {
	if root <= 1 {
		return 0
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	parent := map[int]int{}
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			parent[pid] = ppidOf(pid)
		}
	}
	var total time.Duration
	for pid := range parent {
		for p := pid; p > 1; p = parent[p] {
			if p == root {
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
				if err != nil {
					break
				}
				s := string(b)
				f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
				var ticks int64
				for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
					v, _ := strconv.ParseInt(f[i], 10, 64)
					ticks += v
				}
				total += time.Duration(ticks) * time.Second / 100
				break
			}
		}
	}
	return total
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDrainInProcess measures qmail-send alone: with NOTQMAIL_SEND_DRAIN_INPROC=N it
// queues N messages to one local and one remote recipient, runs the daemon in this
// process against spawners that succeed at once and a real qmail-clean (clean.Serve),
// and logs the rate per window of N/10 messages and this process's CPU per message.
// It asserts only that every message leaves the queue.
func TestDrainInProcess(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("NOTQMAIL_SEND_DRAIN_INPROC"))
	if n <= 0 {
		t.Skip("set NOTQMAIL_SEND_DRAIN_INPROC=N to measure draining N messages in process")
	}
	q := makeQueue(t)
	os.MkdirAll(filepath.Join(q.Dir, queue.SpareS), 0700)
	os.MkdirAll(filepath.Join(q.Dir, queue.SpareQ), 0700) // qmail-clean recycles into it
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = enqueue(t, q, "joe@remote.example", fmt.Sprintf("ok%d@here.example", i), fmt.Sprintf("ok%d@far.example", i))
	}
	cpu0 := selfCPU()
	t0 := time.Now()
	h := startDaemon(t, q, 604800)
	h.pull()
	window := max(n/10, 1)
	last, lastDone, done, off := t0, 0, 0, 0
	deadline := t0.Add(30 * time.Minute)
	for done < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d done after 30 minutes", done, n)
		}
		time.Sleep(10 * time.Millisecond)
		s := h.log.Since(off)
		if i := strings.LastIndexByte(s, '\n'); i >= 0 {
			s = s[:i+1]
			off += len(s)
			done += strings.Count(s, "end msg ")
		}
		for done-lastDone >= window || done >= n && done > lastDone {
			now := time.Now()
			k := min(window, done-lastDone)
			t.Logf("messages %6d-%6d: %7.0f msg/s", lastDone+1, lastDone+k, float64(k)/now.Sub(last).Seconds())
			last, lastDone = now, lastDone+k
		}
	}
	el := time.Since(t0)
	cpu := selfCPU() - cpu0
	t.Logf("drained %d in %v: %.0f msg/s; CPU %v (%.3f ms/msg, qmail-send with fake spawners and qmail-clean)",
		n, el.Round(time.Millisecond), float64(n)/el.Seconds(), cpu.Round(time.Millisecond), float64(cpu.Microseconds())/1000/float64(n))
	for _, id := range ids {
		if !gone(q, id) {
			t.Fatalf("message %d still queued", id)
		}
	}
}

func selfCPU() time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100
}
