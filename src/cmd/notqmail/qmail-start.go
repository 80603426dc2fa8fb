package main

import (
	"fmt"
	"os"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/start"
)

func init() { register("qmail-start", startMain) }

// startMain: qmail-start [defaultdelivery [logger args...]].
func startMain(args []string) int {
	o, err := start.ParseArgs(args, control.Default())
	if err != nil {
		fmt.Fprintln(os.Stderr, "qmail-start:", err)
		return 111
	}
	return start.Run(o)
}
