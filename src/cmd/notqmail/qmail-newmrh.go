package main

import (
	"fmt"
	"os"
	"syscall"

	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/rcpthosts"
)

func init() { register("qmail-newmrh", newmrhMain) }

// newmrhMain compiles control/morercpthosts into control/morercpthosts.cdb.
func newmrhMain(args []string) int {
	if len(args) > 0 {
		fmt.Fprintln(os.Stderr, "qmail-newmrh: usage: qmail-newmrh")
		return 100
	}
	// qmail-smtpd runs as qmaild and must be able to read the cdb.
	syscall.Umask(0o033)
	if err := rcpthosts.NewMRH(home.Path("control")); err != nil {
		fmt.Fprintln(os.Stderr, "qmail-newmrh: fatal:", err)
		return 111
	}
	return 0
}
