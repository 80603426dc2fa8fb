package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/tcpto"
)

func init() { register("qmail-tcpto", tcptoMain) }

// tcptoMain prints the hosts in queue/lock/tcpto with qmail-tcpto's wording.
func tcptoMain(args []string) int {
	f := tcpto.File{Path: filepath.Join(queue.Default().LockDir(), "tcpto")}
	recs, err := f.Records()
	if err != nil {
		fmt.Fprintln(os.Stdout, "qmail-tcpto: fatal:", err)
		return 111
	}
	w := bufio.NewWriter(os.Stdout)
	now := time.Now()
	for _, r := range recs {
		fmt.Fprintf(w, "%s timed out %d seconds ago; # recent timeouts: %d\n",
			r.Addr, int64(now.Sub(r.When)/time.Second), r.Errors)
	}
	if err := w.Flush(); err != nil {
		return 111
	}
	return 0
}
