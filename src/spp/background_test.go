package spp

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBackgroundChildDoesNotHoldTheSession: a plugin that leaves a process in the
// background with its standard output (a cleanup job started with "&") must not
// keep the session waiting for that process to end: the plugin's verdict counts
// when the plugin itself exits.
func TestBackgroundChildDoesNotHoldTheSession(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "bg.pid")
	for _, body := range []string{
		"echo 'HX-Checked: yes'\nsleep 300 &\necho $! > " + pidFile + "\n",
		"sleep 300 &\necho $! > " + pidFile + "\necho 'E550 no'\n",
	} {
		os.Remove(pidFile)
		p := plugin(t, dir, "bg", body)
		r := &Runner{Sections: map[Stage][]string{Rcpt: {p}}, Dir: dir, Timeout: time.Hour}
		done := make(chan Verdict, 1)
		go func() { done <- r.Run(Rcpt, nil, nil, nil) }()
		var v Verdict
		select {
		case v = <-done:
		case <-time.After(time.Minute): // a guard against hanging, not a measure
			t.Error("the plugin's background child held the session")
		}
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if v.Err != nil || len(v.Headers)+len(v.Print) != 1 {
			t.Errorf("%q: verdict %+v", body, v)
		}
	}
}
