package main

import (
	"bufio"
	"context"
	"os"
	"path/filepath"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/dnsresolve"
	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/remote"
)

func init() { register("qmail-remote", remoteMain) }

// remoteMain is qmail-remote: host sender recip... with the message on stdin; the
// reports go to stdout and the exit code is always 0.
func remoteMain(args []string) int {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	if len(args) < 3 {
		remote.UsageOutcome().WriteTo(out)
		return 0
	}
	if err := os.Chdir(home.Dir()); err != nil {
		remote.Outcome{Status: remote.MsgTemp, Text: "Unable to switch to home directory. (#4.3.0)\n"}.WriteTo(out)
		return 0
	}
	cfg, err := remote.LoadSystemConfig(control.Default(), resolvConf(), filepath.Join(queue.Default().LockDir(), "tcpto"))
	if err != nil {
		remote.ControlOutcome(err).WriteTo(out)
		return 0
	}
	remote.Deliver(context.Background(), cfg, args[0], args[1], args[2:], os.Stdin).WriteTo(out)
	return 0
}

// resolvConf is /etc/resolv.conf, or $NOTQMAIL_RESOLVCONF so that tests can point
// qmail-remote at their own DNS server.
func resolvConf() string {
	if p := os.Getenv("NOTQMAIL_RESOLVCONF"); p != "" {
		return p
	}
	return dnsresolve.ResolvConf
}
