package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/notqmail/notqmail/src/local"
	"github.com/notqmail/notqmail/src/maildir"
	"github.com/notqmail/notqmail/src/queueclient"
	"github.com/notqmail/notqmail/src/spawn"
)

func init() { register("qmail-local", localMain) }

// localMain is qmail-local [-nN] user homedir local dash ext domain sender
// defaultdelivery, with the message on (seekable) standard input. Everything it has to
// say, and the output of the programs it runs, goes to standard output.
func localMain(args []string) int {
	syscall.Umask(0o077)
	// A vanished reader must give write errors, not kill us; the programs we run
	// still get SIGPIPE's default action (a handler is reset on exec, SIG_IGN is not).
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	if len(args) == 1 && args[0] == spawn.WorkerFlag {
		return localWorker()
	}
	p := local.Params{}
	for len(args) > 0 && len(args[0]) > 1 && args[0][0] == '-' {
		opt := args[0]
		args = args[1:]
		if opt == "--" {
			break
		}
		for _, c := range opt[1:] {
			switch c {
			case 'n':
				p.DryRun = true
			case 'N':
				p.DryRun = false
			default:
				fmt.Println(local.Usage)
				return local.Permanent
			}
		}
	}
	if len(args) != 8 {
		fmt.Println(local.Usage)
		return local.Permanent
	}
	p.User, p.Home, p.Local, p.Dash, p.Ext, p.Host, p.Sender, p.DefaultDelivery =
		args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7]
	return local.Deliver(p, os.Stdin, local.Options{Out: os.Stdout})
}

// localWorker is qmail-local --worker, started by qmail-lspawn as one account: it runs
// that account's deliveries, as many at once as qmail-lspawn sends, on the socket on
// descriptor 3 (see package spawn). Each delivery is exactly what qmail-local with the
// request's arguments, message and output would do: local.Deliver keeps no
// process-wide state, and the umask and SIGPIPE handling above are the same for all.
func localWorker() int {
	f := os.NewFile(spawn.WorkerFD, "worker socket")
	// FileConn's copy is close-on-exec; the inherited descriptor is not, and must not
	// reach the programs the deliveries run.
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "qmail-local: worker: no socket on descriptor 3:", err)
		return local.Temporary
	}
	conn, ok := c.(*net.UnixConn)
	if !ok {
		fmt.Fprintln(os.Stderr, "qmail-local: worker: descriptor 3 is not a unix socket")
		return local.Temporary
	}
	// One syncfs per file system serves all the Maildir deliveries waiting for it.
	gs := new(maildir.GroupSync)
	defer gs.Close()
	err = spawn.ServeWorker(conn, func(args []string, msg, out *os.File) int {
		p := local.Params{User: args[0], Home: args[1], Local: args[2], Dash: args[3],
			Ext: args[4], Host: args[5], Sender: args[6], DefaultDelivery: args[7]}
		// A forward's qmail-queue writes its complaints into the delivery's
		// output, as it would under a qmail-local of its own.
		return local.Deliver(p, msg, local.Options{Out: out,
			Queue: local.QueueWith(queueclient.Config{Stderr: out}), GroupSync: gs})
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "qmail-local: worker:", err)
		return local.Temporary
	}
	return 0
}
