package bench

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Profile is perf's view of notqmail in scenario 1 at 10 sessions.
type Profile struct {
	Run     Measurement       `json:"run"`
	Reports map[string]string `json:"reports"` // perf report text per view
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
	p.Run = smtpScenario(ctx, srv, "profile (perf attached)", n, 10, prefix)
	srv.Stop()
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
