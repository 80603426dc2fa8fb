package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/tcpto"
)

func init() { register("qmail-tcpok", tcpokMain) }

// tcpokMain clears queue/lock/tcpto so every host is tried again at once.
func tcpokMain(args []string) int {
	f := tcpto.File{Path: filepath.Join(queue.Default().LockDir(), "tcpto")}
	if err := f.Clear(); err != nil {
		fmt.Fprintln(os.Stderr, "qmail-tcpok: fatal:", err)
		return 111
	}
	return 0
}
