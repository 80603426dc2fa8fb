// Package timerslack gives a long-running daemon coarse timers, so that the Go
// runtime's monitor thread wakes less often.
//
// The runtime's monitor (sysmon) sleeps 20 microseconds at a time whenever the process
// has work in hand, and every system call that finds it asleep starts it over at 20
// microseconds. A daemon that handles a message with a few dozen system calls, in
// company with five others doing the same, spent about a third of its CPU time (perf,
// scenario 1 of BENCHMARKS.md) in those wake-ups. Linux lets a thread's timers expire
// late by up to its timer slack (prctl(2) PR_SET_TIMERSLACK, 50 microseconds by
// default), batching the wake-ups; with a slack of a millisecond the monitor wakes far
// less often. Nothing in the daemons depends on a timer shorter than a second.
//
// A thread gets its slack from the thread that created it, and the runtime starts its
// monitor before any code of the program runs, so a process can only give every
// thread a slack by having it before it starts: Reexec sets the slack and executes the
// program again, once, in the same process. Children started afterwards inherit it.
// systemd's TimerSlackNSec= sets it before the start, and then Reexec does nothing.
package timerslack

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Slack is the timer slack daemons run with.
const Slack = time.Millisecond

const (
	prSetTimerSlack = 29 // PR_SET_TIMERSLACK
	prGetTimerSlack = 30 // PR_GET_TIMERSLACK
)

// Current returns the calling thread's timer slack.
func Current() (time.Duration, error) {
	v, _, errno := syscall.RawSyscall6(syscall.SYS_PRCTL, prGetTimerSlack, 0, 0, 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return time.Duration(v), nil
}

// Reexec makes sure the process runs with at least Slack: when the calling thread has
// less, it sets Slack and executes the running program again with the same arguments
// and environment (the same process, so the same pid, descriptors and ids). It must be
// called first thing in main, before the working directory or anything else changes.
//
// It returns nil when the slack is already enough. It returns an error when the slack
// cannot be changed or the program cannot be found again as the file it was started
// from (for example because an upgrade replaced it); the caller then runs on with the
// default slack, which costs only CPU time.
func Reexec() error {
	runtime.LockOSThread()
	// Stay locked on failure too: the thread's slack may have changed.
	cur, err := Current()
	if err != nil {
		return err
	}
	if cur >= Slack {
		runtime.UnlockOSThread()
		return nil
	}
	path, err := self()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRCTL, prSetTimerSlack, uintptr(Slack), 0, 0, 0, 0); errno != 0 {
		return errno
	}
	err = syscall.Exec(path, os.Args, os.Environ())
	// Still here: put the slack back, so that this thread is like the others.
	syscall.RawSyscall6(syscall.SYS_PRCTL, prSetTimerSlack, uintptr(cur), 0, 0, 0, 0)
	runtime.UnlockOSThread()
	return err
}

// self returns the path the program was started from, as argv[0] names it (directly
// or through PATH), when that is still the file running; it is that path, not the
// binary's own name, that the kernel takes the process name from (a link named
// qmail-start to the multi-call binary names the process qmail-start).
func self() (string, error) {
	if len(os.Args) == 0 || os.Args[0] == "" {
		return "", errors.New("timerslack: no argv[0]")
	}
	path := os.Args[0]
	if !strings.Contains(path, "/") {
		p, err := exec.LookPath(path)
		if err != nil {
			return "", err
		}
		path = p
	}
	named, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	running, err := os.Stat("/proc/self/exe")
	if err != nil {
		return "", err
	}
	if !os.SameFile(named, running) {
		return "", errors.New("timerslack: " + path + " is not the running program any more")
	}
	return path, nil
}
