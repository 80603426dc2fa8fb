package timerslack

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const childEnv = "TIMERSLACK_TEST_CHILD"

// TestMain lets the test binary act as a daemon: it counts its starts in the
// environment (which Reexec passes on), calls Reexec and reports its pid, its starts
// and the slack of a thread created after Reexec returned.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "" {
		os.Exit(m.Run())
	}
	starts, _ := strconv.Atoi(os.Getenv("TIMERSLACK_TEST_STARTS"))
	os.Setenv("TIMERSLACK_TEST_STARTS", strconv.Itoa(starts+1))
	err := Reexec()
	// A goroutine locked to its thread while this one holds its own makes the
	// runtime use another thread, created after Reexec.
	runtime.LockOSThread()
	c := make(chan time.Duration)
	go func() {
		runtime.LockOSThread()
		s, _ := Current()
		c <- s
	}()
	fmt.Printf("%d %d %d %v\n", os.Getpid(), starts+1, <-c, err)
	os.Exit(0)
}

// runChild runs the test binary as a daemon, started from a thread with the given
// slack, and returns its report.
func runChild(t *testing.T, slack time.Duration) (pid, starts int, threadSlack time.Duration, errText string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old, err := Current()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, prSetTimerSlack, uintptr(slack), 0, 0, 0, 0); e != 0 {
		t.Fatal(e)
	}
	defer syscall.RawSyscall6(syscall.SYS_PRCTL, prSetTimerSlack, uintptr(old), 0, 0, 0, 0)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=1", "TIMERSLACK_TEST_STARTS=0")
	cmd.Stderr = os.Stderr
	// The child is forked from this thread, so it starts with this thread's slack.
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	f := strings.SplitN(strings.TrimSpace(string(out)), " ", 4)
	if len(f) != 4 {
		t.Fatalf("child said %q", out)
	}
	pid, _ = strconv.Atoi(f[0])
	starts, _ = strconv.Atoi(f[1])
	ns, _ := strconv.Atoi(f[2])
	if pid != cmd.Process.Pid {
		t.Errorf("child reported pid %d, started as %d: Reexec must keep the process", pid, cmd.Process.Pid)
	}
	return pid, starts, time.Duration(ns), f[3]
}

func TestReexecGivesEveryThreadTheSlack(t *testing.T) {
	_, starts, slack, errText := runChild(t, 50*time.Microsecond)
	if starts != 2 || errText != "<nil>" {
		t.Errorf("started %d times (want 2: once more by Reexec), error %s", starts, errText)
	}
	if slack != Slack {
		t.Errorf("a thread made after Reexec has slack %v, want %v", slack, Slack)
	}
}

func TestReexecKeepsEnoughSlack(t *testing.T) {
	_, starts, slack, errText := runChild(t, 2*Slack)
	if starts != 1 || errText != "<nil>" {
		t.Errorf("started %d times (want 1: the slack was already enough), error %s", starts, errText)
	}
	if slack != 2*Slack {
		t.Errorf("slack %v, want the inherited %v", slack, 2*Slack)
	}
}

func TestSelfRefusesAnotherFile(t *testing.T) {
	saved := os.Args
	defer func() { os.Args = saved }()
	os.Args = []string{"/bin/sh"}
	if p, err := self(); err == nil {
		t.Errorf("self() = %q for a program that is not running", p)
	}
	os.Args = []string{""}
	if _, err := self(); err == nil {
		t.Error("self() accepted an empty argv[0]")
	}
}
