// Command qmail-queue puts one message into the queue: the message on fd 0, the
// envelope on fd 1. See qmail-queue(8) and package queue.
//
// It is its own binary, not a name of the multi-call binary, because it is installed
// setuid qmailq.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/ids"
	"github.com/notqmail/notqmail/src/queue"
)

func main() {
	os.Exit(run())
}

func run() (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintln(os.Stderr, "qmail-queue: internal bug:", r)
			code = queue.ExitBug
		}
	}()
	// qmail's sig_pipeignore and sig_miscignore: write errors must be reported as
	// exit codes, and stray signals must not kill a half-written message.
	signal.Ignore(syscall.SIGPIPE, syscall.SIGVTALRM, syscall.SIGPROF, syscall.SIGQUIT,
		syscall.SIGINT, syscall.SIGHUP, syscall.SIGXCPU, syscall.SIGXFSZ)
	syscall.Umask(033)
	// Run by root in a sandbox (not setuid there): become its owner first.
	if err := home.EnterSandbox(); err != nil {
		fmt.Fprintln(os.Stderr, "qmail-queue:", err)
		return 111
	}
	start := time.Now()
	// The deadline is on the wall clock, which qmail-send's stale-file rule uses too.
	caller := queue.Caller{UID: os.Getuid(), PID: os.Getpid(), Time: start, Deadline: start.Round(0).Add(queue.Death)}
	if err := os.Chdir(home.Dir()); err != nil {
		fmt.Fprintln(os.Stderr, "qmail-queue:", err)
		return queue.ExitHome
	}
	if err := os.Chdir("queue"); err != nil {
		fmt.Fprintln(os.Stderr, "qmail-queue:", err)
		return queue.ExitQueueDir
	}
	var uids [3]int
	for i, name := range []string{ids.Alias, ids.Qmaild, ids.Qmails} {
		a, err := ids.User(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "qmail-queue:", err)
			return 111
		}
		uids[i] = a.UID
	}
	caller.Invoked = queue.Invoked(caller.UID, uids[0], uids[1], uids[2], home.InSandbox())

	// No cleanup when the time is up: the main goroutine may just have linked the
	// message into todo/, and stale files are qmail-send's to remove.
	time.AfterFunc(queue.Death, func() { os.Exit(queue.ExitTimeout) })
	// SIGALRM is qmail-queue's timeout signal; whoever sends it gets the same answer.
	alarm := make(chan os.Signal, 1)
	signal.Notify(alarm, syscall.SIGALRM)
	go func() {
		<-alarm
		os.Exit(queue.ExitTimeout)
	}()

	err := queue.Enqueue(queue.Open("."), os.Stdin, os.NewFile(1, "envelope"), caller)
	if err != nil {
		fmt.Fprintln(os.Stderr, "qmail-queue:", err)
	}
	return queue.Code(err)
}
