package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Measurement is one scenario run against one MTA.
type Measurement struct {
	Scenario string `json:"scenario"`
	MTA      string `json:"mta"`
	Sessions int    `json:"sessions,omitempty"`
	Messages int    `json:"messages"`
	// Accept is messages per second while the client sent (SMTP or sendmail);
	// 0 when the scenario does not inject while measuring.
	Accept float64 `json:"accept_per_s,omitempty"`
	// E2E is messages per second from the first message until the last was delivered
	// (its file in new/, or the queue empty for remote delivery).
	E2E      float64 `json:"end_to_end_per_s"`
	Seconds  float64 `json:"seconds"`
	CPUms    float64 `json:"cpu_ms_per_msg"` // -1 when unavailable
	PeakRSS  int64   `json:"peak_rss_bytes"` // summed over the MTA's processes
	DaemonRS int64   `json:"queue_manager_peak_rss_bytes,omitempty"`
	// DiskKiB, Writes and Flushes are what the disk holding the MTA's files was asked
	// to do per message over the measurement: KiB written, write requests and cache
	// flushes (the whole device, so other writers on it count too); DiskKiB 0 when its
	// counters are unknown, Writes 0 in results written before it was measured.
	DiskKiB float64 `json:"disk_write_kib_per_msg,omitempty"`
	Writes  float64 `json:"disk_writes_per_msg,omitempty"`
	Flushes float64 `json:"disk_flushes_per_msg,omitempty"`
	// Windows are delivery rates (messages/s) per window of WindowSize messages.
	Windows    []float64 `json:"windows_per_s,omitempty"`
	WindowSize int       `json:"window_size,omitempty"`
	DaemonRSS  []int64   `json:"queue_manager_rss_bytes_per_window,omitempty"`
	// Settled is how quiet the machine was when the measurement started, and how long
	// the run waited for it (Quiet).
	Settled string `json:"settled,omitempty"`
	Error   string `json:"error,omitempty"`
}

// message is the 4 KiB message the local injectors send (smtp-source makes its own
// of the same size with -l 4096).
func message(size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\nTo: %s\nSubject: bench\n\n", Sender, LocalRcpt)
	line := strings.Repeat("x", 75) + "\n"
	for b.Len()+len(line) <= size {
		b.WriteString(line)
	}
	for b.Len() < size-1 {
		b.WriteByte('y')
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// deadline is how long a scenario may take before it is reported as failed: a hang
// guard, generous for a loaded machine.
func deadline(n int) time.Duration { return 2*time.Minute + time.Duration(n)*100*time.Millisecond }

// waitCount polls count until it reaches target, calling each (if set) with the
// count and time of every poll.
func waitCount(ctx context.Context, count func() (int, error), target int, limit time.Duration, each func(int, time.Time)) error {
	end := time.Now().Add(limit)
	interval := 20 * time.Millisecond
	if target > 5000 {
		interval = 100 * time.Millisecond
	}
	if target > 20000 {
		interval = 200 * time.Millisecond // counting a huge new/ costs CPU too
	}
	for {
		n, err := count()
		if err != nil {
			return err
		}
		if each != nil {
			each(n, time.Now())
		}
		if n >= target {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("%d of %d after %v", n, target, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

func newCount(s server) func() (int, error) {
	return func() (int, error) { return countFiles(s.NewDir()) }
}

// queueDrained counts how many of n have left the queue.
func queueDrained(s server, n int) func() (int, error) {
	return func() (int, error) {
		q, err := s.Queued()
		return n - q, err
	}
}

type meter struct {
	s      server
	cpu0   time.Duration
	mem    *memSampler
	t0     time.Time
	disk   string // the stat file of the disk under s.NewDir()
	disk0  diskCounters
	diskOK bool
}

func startMeter(s server) *meter {
	m := &meter{s: s, mem: startSampler(s.Acct(), 100*time.Millisecond), disk: diskStatPath(s.NewDir())}
	m.cpu0, _ = s.Acct().cpu()
	m.disk0, m.diskOK = readDisk(m.disk)
	m.t0 = time.Now()
	return m
}

func (m *meter) finish(r *Measurement) {
	r.Seconds = time.Since(m.t0).Seconds()
	r.E2E = float64(r.Messages) / r.Seconds
	r.CPUms = -1
	if c, err := m.s.Acct().cpu(); err == nil {
		r.CPUms = float64(c-m.cpu0) / float64(time.Millisecond) / float64(r.Messages)
	}
	if d, ok := readDisk(m.disk); ok && m.diskOK && r.Messages > 0 {
		r.DiskKiB = float64(d.sectors-m.disk0.sectors) / 2 / float64(r.Messages)
		r.Writes = float64(d.writes-m.disk0.writes) / float64(r.Messages)
		r.Flushes = float64(d.flushes-m.disk0.flushes) / float64(r.Messages)
	}
	var procs map[string]int64
	r.PeakRSS, procs = m.mem.finish()
	r.DaemonRS = procs[m.s.Daemon()]
}

// smtpScenario: smtp-source sends n messages of 4 KiB over sessions concurrent
// connections, one message per connection, to alice's Maildir.
func smtpScenario(ctx context.Context, s server, name string, n, sessions int, prefix []string, warm time.Duration) Measurement {
	r := Measurement{Scenario: name, MTA: s.Name(), Sessions: sessions, Messages: n}
	if err := s.Start(ctx, true, true, prefix); err != nil {
		r.Error = err.Error()
		return r
	}
	defer s.Stop()
	sleepCtx(ctx, warm)
	m := startMeter(s)
	cmd := exec.CommandContext(ctx, "smtp-source", "-s", strconv.Itoa(sessions), "-m", strconv.Itoa(n), "-l", "4096",
		"-f", Sender, "-t", LocalRcpt, "-M", "client.example", s.Addr())
	out, err := cmd.CombinedOutput()
	accept := time.Since(m.t0)
	if err != nil {
		r.Error = fmt.Sprintf("smtp-source: %v: %s", err, tail(out))
		m.finish(&r)
		return r
	}
	r.Accept = float64(n) / accept.Seconds()
	if err := waitCount(ctx, newCount(s), n, deadline(n), nil); err != nil {
		r.Error = "delivery: " + err.Error()
	}
	m.finish(&r)
	return r
}

// WarmUp is how long scenarios 1-3 let a started instance run before the clock starts,
// so that they measure a running server taking a burst of mail, not its first seconds:
// notqmail's qmail-clean and qmail-send fill their pools of spare queue files then
// (qmail-clean(8)); Postfix's master starts its services when they are first needed.
const WarmUp = 10 * time.Second

// sleepCtx waits for d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 400 {
		s = "..." + s[len(s)-400:]
	}
	return s
}

// injectScript is a shell loop running the MTA's sendmail count times with the
// message file on stdin. In the cgroup it counts as the MTA's work (the shell's own
// fork per message is the same for both MTAs).
func injectCmd(ctx context.Context, s server, a *acct, pidfile, msgFile, rcpt string, count int) *exec.Cmd {
	argv, env := s.Sendmail(rcpt)
	script := `n=$1; f=$2; shift 2; i=0; while [ $i -lt $n ]; do "$@" < "$f" >/dev/null 2>&1 || echo "sendmail failed: $?" >&2; i=$((i+1)); done`
	args := append([]string{"/bin/sh", "-c", script, "inject", strconv.Itoa(count), msgFile}, argv...)
	var w []string
	if a != nil {
		w = a.wrap(pidfile, args...)
	} else {
		w = args
	}
	cmd := exec.CommandContext(ctx, w[0], w[1:]...)
	cmd.Env = env
	return cmd
}

// sendmailScenario: n messages through the MTA's sendmail, one after another, with
// the MTA running.
func sendmailScenario(ctx context.Context, s server, n int, work string, warm time.Duration) Measurement {
	r := Measurement{Scenario: "3 sendmail", MTA: s.Name(), Messages: n, Sessions: 1}
	msgFile := filepath.Join(work, "msg")
	if err := os.WriteFile(msgFile, message(4096), 0o644); err != nil {
		r.Error = err.Error()
		return r
	}
	if err := s.Start(ctx, true, true, nil); err != nil {
		r.Error = err.Error()
		return r
	}
	defer s.Stop()
	sleepCtx(ctx, warm)
	m := startMeter(s)
	cmd := injectCmd(ctx, s, s.Acct(), filepath.Join(work, "pid.inject"), msgFile, LocalRcpt, n)
	out, err := cmd.CombinedOutput()
	r.Accept = float64(n) / time.Since(m.t0).Seconds()
	if err != nil || len(out) > 0 {
		r.Error = fmt.Sprintf("injection: %v %s", err, tail(out))
	}
	if err := waitCount(ctx, newCount(s), n, deadline(n), nil); err != nil {
		r.Error = "delivery: " + err.Error()
	}
	m.finish(&r)
	return r
}

// injectHeld queues n messages to rcpt over SMTP (smtp-source, 20 sessions) with
// only the MTA's SMTP side running, so nothing is delivered; not measured.
func injectHeld(ctx context.Context, s server, n int, rcpt string) error {
	if err := s.Start(ctx, true, false, nil); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "smtp-source", "-s", "20", "-m", strconv.Itoa(n), "-l", "4096",
		"-f", Sender, "-t", rcpt, "-M", "client.example", s.Addr()).CombinedOutput()
	if err != nil {
		s.Stop()
		return fmt.Errorf("smtp-source: %v: %s", err, tail(out))
	}
	// The last messages may still be on their way into the queue.
	err = waitCount(ctx, s.Queued, n, deadline(n), nil)
	if serr := s.Stop(); err == nil {
		err = serr
	}
	return err
}

// heldScenario queues n messages while the MTA's delivery is stopped, then starts it and
// measures until they are delivered (local: n files in new/; remote: the queue
// empty). With window > 0 it records the rate per window of messages and the queue
// manager's RSS.
func heldScenario(ctx context.Context, s server, name string, n, window int, remote bool, work string) Measurement {
	r := Measurement{Scenario: name, MTA: s.Name(), Messages: n}
	rcpt := LocalRcpt
	if remote {
		rcpt = RemoteRcpt
	}
	if err := injectHeld(ctx, s, n, rcpt); err != nil {
		r.Error = err.Error()
		return r
	}
	m := startMeter(s)
	if err := s.Start(ctx, false, true, nil); err != nil {
		r.Error = err.Error()
		m.finish(&r)
		return r
	}
	defer s.Stop()
	count := newCount(s)
	if remote {
		count = queueDrained(s, n)
	}
	var each func(int, time.Time)
	var times []time.Time
	if window > 0 {
		r.WindowSize = window
		next := window
		each = func(c int, t time.Time) {
			for c >= next && next <= n {
				times = append(times, t)
				r.DaemonRSS = append(r.DaemonRSS, m.mem.rssOf(s.Daemon()))
				next += window
			}
		}
	}
	if err := waitCount(ctx, count, n, deadline(n), each); err != nil {
		r.Error = "delivery: " + err.Error()
	}
	m.finish(&r)
	r.Windows = windowRates(m.t0, times, window)
	return r
}

// windowRates turns the times at which each window's last message arrived into
// rates: window messages over the time since the previous window ended (or start).
func windowRates(start time.Time, ends []time.Time, window int) []float64 {
	var rates []float64
	prev := start
	for _, t := range ends {
		d := t.Sub(prev).Seconds()
		if d <= 0 {
			d = 1e-3
		}
		rates = append(rates, float64(window)/d)
		prev = t
	}
	return rates
}

// sink is smtp-sink on a loopback port.
type sink struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startSink(ctx context.Context, port int) (*sink, error) {
	args := []string{}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	args = append(args, "-m", "200", fmt.Sprintf("127.0.0.1:%d", port), "256")
	cmd := exec.Command("smtp-sink", args...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &sink{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	p := &started{name: "smtp-sink", cmd: cmd, done: s.done}
	if err := waitListening(ctx, fmt.Sprintf("127.0.0.1:%d", port), p); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *sink) stop() {
	s.cmd.Process.Kill()
	<-s.done
}
