package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/notqmail/notqmail/src/local"
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
