package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/qfix"
	"github.com/notqmail/notqmail/src/queue"
)

func init() { register("qmail-qfix", qfixMain) }

// qfixMain is qmail-qfix [-f] [-s split] [queuedir]: 0 healthy (or all fixed), 1
// problems remain, 111 when it cannot do its job.
func qfixMain(args []string) int {
	fl := flag.NewFlagSet("qmail-qfix", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	fix := fl.Bool("f", false, "")
	split := fl.String("s", "", "")
	if err := fl.Parse(args); err != nil || fl.NArg() > 1 {
		fmt.Fprintln(os.Stderr, "usage: qmail-qfix [-f] [-s split] [queuedir]")
		return 100
	}
	opt := qfix.Options{Dir: home.Path("queue"), Fix: *fix}
	if fl.NArg() == 1 {
		opt.Dir = fl.Arg(0)
	}
	if *split != "" {
		n, err := strconv.Atoi(*split)
		if err != nil || n < 1 || n > 100000 {
			fmt.Fprintln(os.Stderr, "qmail-qfix: fatal: bad split count", *split)
			return 100
		}
		opt.Split = n
	}
	o, err := queue.LookupOwners()
	switch {
	case err == nil:
		opt.Owners, opt.CheckOwners = o, true
	case *fix:
		fmt.Fprintln(os.Stderr, "qmail-qfix: fatal:", err)
		return 111
	default:
		fmt.Fprintln(os.Stderr, "qmail-qfix: warning: owners not checked:", err)
	}
	rep, err := qfix.Run(opt)
	w := bufio.NewWriter(os.Stdout)
	for _, p := range rep.Problems {
		fmt.Fprintln(w, p)
	}
	if err == nil {
		switch n := rep.Unfixed(); {
		case len(rep.Problems) == 0:
			fmt.Fprintf(w, "%s: healthy, split %d\n", opt.Dir, rep.Split)
		case n == 0:
			fmt.Fprintf(w, "%s: %d problems fixed, split %d\n", opt.Dir, len(rep.Problems), rep.Split)
		default:
			fmt.Fprintf(w, "%s: %d problems remain\n", opt.Dir, n)
		}
	}
	if werr := w.Flush(); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "qmail-qfix: fatal:", err)
		return 111
	}
	if rep.Unfixed() > 0 {
		return 1
	}
	return 0
}
