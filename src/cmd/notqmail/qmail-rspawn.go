package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/ids"
	"github.com/notqmail/notqmail/src/spawn"
)

func init() { register("qmail-rspawn", rspawnMain) }

// rspawnMain runs qmail-remote ($QMAILREMOTE) per recipient, for qmail-send on stdin
// and stdout.
func rspawnMain(args []string) int {
	mess := home.Path("queue", "mess")
	if err := os.Chdir(mess); err != nil {
		return 111
	}
	q, err := ids.User(ids.Qmailq)
	if err != nil {
		return 111
	}
	owner := q.UID
	if home.InSandbox() {
		owner = -1
	}
	spawn.CleanTCPTo(home.Path("queue"))
	signal.Ignore(syscall.SIGPIPE)
	srv := &spawn.Server{
		MessDir:  mess,
		OwnerUID: owner,
		Runner:   &spawn.Remote{Program: spawn.RemoteProgram(home.Dir()), Dir: mess},
	}
	srv.Serve(os.Stdin, os.Stdout)
	return 0
}
