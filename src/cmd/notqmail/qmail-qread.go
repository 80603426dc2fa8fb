package main

import (
	"os"

	"github.com/notqmail/notqmail/src/qread"
	"github.com/notqmail/notqmail/src/queue"
)

func init() { register("qmail-qread", qreadMain) }

// qreadMain lists the queued messages and their recipients; like qmail-qread, it
// reports trouble on stdout.
func qreadMain(args []string) int {
	if err := qread.Read(queue.Default(), os.Stdout); err != nil {
		return 111
	}
	return 0
}
