package spawn

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestWorkerBackgroundProgramDoesNotHoldDelivery: a program that leaves a process
// running in the background with the output pipe open does not hold the delivery
// (nor its slot) once the worker has reported: its output is read for outputGrace
// at most, as exec's WaitDelay bounds an exec'ed qmail-local's.
func TestWorkerBackgroundProgramDoesNotHoldDelivery(t *testing.T) {
	h := workerHome(t, "alice")
	ah := h.UserHome("alice")
	dir, err := os.MkdirTemp("", "worker-bg-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0777) // the program runs as the sandbox owner
	pidfile := filepath.Join(dir, "bg.pid")
	os.WriteFile(filepath.Join(ah, ".qmail-bg"), []byte("|echo started; sleep 600 & echo $! >"+pidfile+"\n"), 0644)
	bgPID := func() int {
		b, _ := os.ReadFile(pidfile)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return pid
	}
	defer func() {
		if pid := bgPID(); pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}()
	pool := &Pool{Exe: filepath.Join(h.Bin, "notqmail")}
	defer pool.Close()
	l := &Local{Home: h.Dir, DefaultDelivery: "./Maildir/", Sandbox: true, Workers: pool}
	got := deliverMsg(t, l, "Subject: x\n\nhi\n", "joe@example.net", "alice-bg@"+h.Domain)
	if !strings.HasPrefix(got, "K") || !strings.Contains(got, "started") {
		t.Errorf("report: %q", got)
	}
	pid := bgPID()
	if pid <= 0 || gone(pid) {
		t.Fatalf("the background process (%d) is not running: the test shows nothing", pid)
	}
	// The worker is free for the next delivery.
	if got := deliverMsg(t, l, "Subject: y\n\nhi\n", "joe@example.net", "alice@"+h.Domain); got != "Kdid 1+0+0\n" {
		t.Errorf("next delivery: %q", got)
	}
}
