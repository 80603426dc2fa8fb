package main

import (
	"fmt"
	"os"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/start"
	"github.com/notqmail/notqmail/src/timerslack"
)

func init() { register("qmail-start", startMain) }

// startMain: qmail-start [defaultdelivery [logger args...]].
func startMain(args []string) int {
	// The daemons qmail-start starts inherit the slack (timerslack explains why).
	if err := timerslack.Reexec(); err != nil {
		fmt.Fprintln(os.Stderr, "qmail-start: warning: running with fine timers:", err)
	}
	o, err := start.ParseArgs(args, control.Default())
	if err != nil {
		fmt.Fprintln(os.Stderr, "qmail-start:", err)
		return 111
	}
	return start.Run(o)
}
