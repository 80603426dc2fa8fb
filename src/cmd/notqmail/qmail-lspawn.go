package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/ids"
	"github.com/notqmail/notqmail/src/spawn"
)

func init() { register("qmail-lspawn", lspawnMain) }

// lspawnMain: qmail-lspawn defaultdelivery, with qmail-send on stdin and stdout.
func lspawnMain(args []string) int {
	if len(args) < 1 {
		fmt.Fprintln(os.Stderr, "qmail-lspawn: usage: qmail-lspawn defaultdelivery")
		return 100
	}
	h := home.Dir()
	if err := os.Chdir(h); err != nil {
		return 111
	}
	sandbox := home.InSandbox()
	q, err1 := ids.User(ids.Qmailq)
	p, err2 := ids.User(ids.Qmailp)
	n, err3 := ids.Group(ids.GroupNofiles)
	if err1 != nil || err2 != nil || err3 != nil {
		return 111
	}
	owner := q.UID
	if sandbox {
		owner = -1
	}
	signal.Ignore(syscall.SIGPIPE)
	l := &spawn.Local{Home: h, DefaultDelivery: args[0], Sandbox: sandbox,
		GetpwUID: p.UID, GetpwGID: n}
	if os.Getenv(spawn.WorkersOffEnv) != "0" {
		// Workers are this very binary, used only while bin/qmail-local is it too.
		l.Workers = &spawn.Pool{Exe: "/proc/self/exe"}
	}
	srv := &spawn.Server{
		MessDir:  home.Path("queue", "mess"),
		OwnerUID: owner,
		Runner:   l,
	}
	srv.Serve(pipeFile(0, "qmail-send"), pipeFile(1, "qmail-send"))
	if l.Workers != nil {
		l.Workers.Close()
	}
	return 0
}
