package main

import (
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/ids"
	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/remote"
	"github.com/notqmail/notqmail/src/spawn"
)

func init() { register("qmail-rspawn", rspawnMain) }

// rspawnMain runs qmail-remote ($QMAILREMOTE) per recipient, for qmail-send on stdin
// and stdout: in this process when bin/qmail-remote is this binary (see
// spawn.RemoteInProcessOK), else as a program per delivery.
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
	srv := &spawn.Server{MessDir: mess, OwnerUID: owner}
	prog := spawn.RemoteProgram(home.Dir())
	if spawn.RemoteInProcessOK(prog) {
		// bin/qmail-remote is this binary: run its deliveries here, with
		// connections kept between them, instead of one process each.
		r := &spawn.RemoteInProcess{
			Control:    control.Default(),
			ResolvConf: resolvConf(),
			TCPTO:      filepath.Join(queue.Default().LockDir(), "tcpto"),
			Pool:       &remote.Pool{},
		}
		defer r.Close()
		srv.Runner = r
	} else {
		srv.Runner = &spawn.Remote{Program: prog, Dir: mess}
	}
	srv.Serve(pipeFile(0, "qmail-send"), pipeFile(1, "qmail-send"))
	return 0
}
