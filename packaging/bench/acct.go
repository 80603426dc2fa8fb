package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// CPU accounting: every process of an MTA under test runs in its own cgroup (v1
// cpuacct hierarchy), entered by a small sh wrapper before the program is exec'ed, so
// every descendant (qmail-queue, qmail-local, Postfix's smtpd, cleanup, virtual...) is
// counted and nothing else is. The load generators (smtp-source, the injecting shell
// loops of the offline scenarios) stay outside. CPU is cpuacct.usage_user +
// usage_sys, read before and after a measurement. Without a writable cgroup (not
// root), CPU is reported as unavailable.

// CgroupRoot is the cgroup v1 cpuacct hierarchy.
var CgroupRoot = "/sys/fs/cgroup/cpuacct"

type acct struct {
	dir string // "" when accounting is unavailable
}

// newAcct creates cgroup name under CgroupRoot; on failure the returned acct only
// runs programs, without accounting.
func newAcct(name string) *acct {
	dir := filepath.Join(CgroupRoot, name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return &acct{}
	}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
		return &acct{}
	}
	return &acct{dir: dir}
}

func (a *acct) ok() bool { return a != nil && a.dir != "" }

// wrap returns argv that enters the cgroup, writes its pid to pidfile, and execs
// args.
func (a *acct) wrap(pidfile string, args ...string) []string {
	script := `echo $$ > "$0"; exec "$@"`
	if a.ok() {
		script = `echo $$ > ` + shQuote(filepath.Join(a.dir, "cgroup.procs")) + `; ` + script
	}
	return append([]string{"/bin/sh", "-c", script, pidfile}, args...)
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// cpu returns the user and system CPU time of the cgroup so far.
func (a *acct) cpu() (time.Duration, error) {
	if !a.ok() {
		return 0, errors.New("no cgroup accounting")
	}
	var total time.Duration
	for _, f := range []string{"cpuacct.usage_user", "cpuacct.usage_sys"} {
		b, err := os.ReadFile(filepath.Join(a.dir, f))
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", f, err)
		}
		total += time.Duration(n)
	}
	return total, nil
}

// pids lists the processes in the cgroup.
func (a *acct) pids() []int {
	if !a.ok() {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(a.dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	return parsePids(b)
}

func parsePids(b []byte) []int {
	var ps []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			ps = append(ps, n)
		}
	}
	return ps
}

// remove deletes the cgroup once it is empty, waiting a little for exiting processes.
func (a *acct) remove() {
	if !a.ok() {
		return
	}
	for i := 0; i < 100 && len(a.pids()) > 0; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	os.Remove(a.dir)
}

// procInfo is what /proc/PID/status says about memory.
type procInfo struct {
	name     string
	rss, hwm int64 // bytes
}

func readStatus(pid int) (procInfo, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procInfo{}, false
	}
	return parseStatus(b), true
}

func parseStatus(b []byte) procInfo {
	var p procInfo
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Name":
			p.name = v
		case "VmRSS", "VmHWM":
			f := strings.Fields(v)
			if len(f) == 0 {
				continue
			}
			n, _ := strconv.ParseInt(f[0], 10, 64)
			if k == "VmRSS" {
				p.rss = n * 1024
			} else {
				p.hwm = n * 1024
			}
		}
	}
	return p
}

// memSampler polls the cgroup's processes every interval: the peak of the summed RSS
// of all of them, and each program's largest VmHWM. Short-lived processes between
// two samples are missed; their RSS is small next to the daemons'.
type memSampler struct {
	a        *acct
	mu       sync.Mutex
	peakSum  int64
	peakProc map[string]int64
	stop     chan struct{}
	done     chan struct{}
}

func startSampler(a *acct, interval time.Duration) *memSampler {
	s := &memSampler{a: a, peakProc: map[string]int64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *memSampler) sample() {
	var sum int64
	procs := map[string]int64{}
	for _, pid := range s.a.pids() {
		p, ok := readStatus(pid)
		if !ok {
			continue
		}
		sum += p.rss
		if p.hwm > procs[p.name] {
			procs[p.name] = p.hwm
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sum > s.peakSum {
		s.peakSum = sum
	}
	for n, v := range procs {
		if v > s.peakProc[n] {
			s.peakProc[n] = v
		}
	}
}

// rssOf returns the current RSS of the first process named name, or 0.
func (s *memSampler) rssOf(name string) int64 {
	for _, pid := range s.a.pids() {
		if p, ok := readStatus(pid); ok && p.name == name {
			return p.rss
		}
	}
	return 0
}

func (s *memSampler) finish() (peakSum int64, peakProc map[string]int64) {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakSum, s.peakProc
}
