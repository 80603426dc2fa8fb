package main

import (
	"fmt"
	"os"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/qmtp"
)

func init() { register("qmail-qmqpc", qmqpcMain) }

// qmqpcMain is qmail-qmqpc: qmail-queue's interface (message on fd 0, envelope on
// fd 1), handing the message to a QMQP server.
func qmqpcMain(args []string) int {
	if len(args) > 0 {
		fmt.Fprintln(os.Stderr, "usage: qmail-qmqpc < message 1< envelope")
		return 100
	}
	return qmtp.QMQPC(control.Default(), os.Stdin, os.Stdout, qmtp.OpenCustomFD())
}
