package main

import (
	"fmt"
	"os"

	"github.com/notqmail/notqmail/src/qread"
	"github.com/notqmail/notqmail/src/queue"
)

func init() { register("qmail-qstat", qstatMain) }

// qstatMain counts the queued and not yet preprocessed messages.
func qstatMain(args []string) int {
	if err := qread.Stat(queue.Default(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "qmail-qstat:", err)
		return 111
	}
	return 0
}
