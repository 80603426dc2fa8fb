package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Profile is perf's view of notqmail in scenario 1 at 10 sessions.
type Profile struct {
	Run     Measurement       `json:"run"`
	Reports map[string]string `json:"reports"` // perf report text per view
	// Execs is what one run of a program costs, from a shell loop of Runs runs.
	Execs []ExecCost `json:"exec_costs,omitempty"`
}

// ExecCost is the CPU (user+system, the loop's children by wait4) and wall time per
// run of one command, the loop shell's own share included.
type ExecCost struct {
	What  string  `json:"what"`
	Runs  int     `json:"runs"`
	CPUms float64 `json:"cpu_ms"`
	Wall  float64 `json:"wall_ms"`
}

// execCosts times process starts: /bin/true (fork+exec), the notqmail multi-call
// binary doing nothing (`notqmail --list`: a Go runtime start, as qmail-local pays)
// and qmail-queue queueing a 4 KiB message (what qmail-smtpd and sendmail run per
// message). Compare with BenchmarkEnqueue4K, the same work without the exec.
func execCosts(ctx context.Context, n *notqmail, work string, runs int) ([]ExecCost, error) {
	msg := filepath.Join(work, "exec-msg")
	env := filepath.Join(work, "exec-env")
	if err := os.WriteFile(msg, message(4096), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(env, []byte("F"+Sender+"\x00T"+LocalRcpt+"\x00\x00"), 0o644); err != nil {
		return nil, err
	}
	cases := []struct{ what, cmd string }{
		{"fork+exec of /bin/true", "/bin/true"},
		{"notqmail --list (Go program start and exit)", shQuote(filepath.Join(n.h.Bin, "notqmail")) + " --list >/dev/null"},
		{"qmail-queue, one 4 KiB message", shQuote(filepath.Join(n.h.Bin, "qmail-queue")) + " <" + shQuote(msg) + " 1<" + shQuote(env)},
	}
	var res []ExecCost
	for _, c := range cases {
		script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do %s || exit 1; i=$((i+1)); done`, runs, c.cmd)
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
		cmd.Env, cmd.Dir = n.h.Env(), n.h.Dir
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return res, fmt.Errorf("%s: %v: %s", c.what, err, tail(out))
		}
		wall := time.Since(t0)
		ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		var cpu time.Duration
		if ru != nil {
			cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		res = append(res, ExecCost{What: c.what, Runs: runs,
			CPUms: float64(cpu) / float64(time.Millisecond) / float64(runs),
			Wall:  float64(wall) / float64(time.Millisecond) / float64(runs)})
	}
	return res, nil
}

// perfWorks reports whether perf can count here.
func perfWorks() bool {
	return exec.Command("perf", "stat", "-e", "instructions", "true").Run() == nil
}

// profile runs scenario 1 at 10 sessions on a fresh notqmail with qmail-start and
// qmail-smtpd each under `perf record -g` (which follows their children: qmail-send,
// qmail-lspawn, qmail-local, qmail-clean, qmail-queue), then asks perf report where
// the samples went: by program, by program and library/kernel, and by symbol.
func profile(ctx context.Context, b *runner, n int) (*Profile, error) {
	if !perfWorks() {
		return nil, fmt.Errorf("perf does not work here")
	}
	b.seq++
	srv, err := newNotqmail(b.work, b.bin, fmt.Sprintf("%s-%d", b.tag, b.seq), nqOptions{Port: b.o.Port + 45})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	dir := filepath.Join(b.work, "perf")
	if err := exec.Command("mkdir", "-p", dir).Run(); err != nil {
		return nil, err
	}
	prefix := []string{"perf", "record", "-F", "999", "-g", "-q", "-o", filepath.Join(dir, "{name}.data"), "--"}
	p := &Profile{Reports: map[string]string{}}
	p.Run = smtpScenario(ctx, srv, "profile (perf attached)", n, 10, prefix, b.warmUp())
	srv.Stop()
	if p.Execs, err = execCosts(ctx, srv, b.work, 200); err != nil {
		p.Run.Error += " exec costs: " + err.Error()
	}
	files := []string{filepath.Join(dir, "qmail-start.data"), filepath.Join(dir, "qmail-smtpd.data")}
	views := []struct{ name, sort string }{
		{"by program", "comm"},
		{"by program and object", "comm,dso"},
		{"by symbol", "sym"},
		{"by program and symbol", "comm,sym"},
		{"inclusive (with callees), by symbol", "sym+children"},
	}
	for _, f := range files {
		for _, v := range views {
			args := []string{"report", "-i", f, "--stdio", "--no-children", "-g", "none", "--sort", v.sort, "--percent-limit", "0.7"}
			if v.sort == "sym+children" {
				args = []string{"report", "-i", f, "--stdio", "--children", "-g", "none", "--sort", "sym", "--percent-limit", "3"}
			}
			if v.sort == "comm" {
				args = append(args, "--show-nr-samples", "--percent-limit", "0")
			}
			out, err := exec.CommandContext(ctx, "perf", args...).Output()
			key := fmt.Sprintf("%s, %s", strings.TrimSuffix(filepath.Base(f), ".data"), v.name)
			if err != nil {
				p.Reports[key] = "perf report failed: " + err.Error()
				continue
			}
			p.Reports[key] = trimPerf(string(out), 40)
		}
	}
	return p, nil
}

// trimPerf keeps the sample count header and the first max entries.
func trimPerf(s string, max int) string {
	var keep []string
	n := 0
	for _, l := range strings.Split(s, "\n") {
		t := strings.TrimSpace(l)
		if t == "" {
			continue
		}
		if strings.HasPrefix(t, "#") {
			if strings.Contains(t, "Samples") || strings.Contains(t, "Event count") {
				keep = append(keep, t)
			}
			continue
		}
		if n < max {
			keep = append(keep, strings.TrimRight(l, " "))
			n++
		}
	}
	return strings.Join(keep, "\n")
}
