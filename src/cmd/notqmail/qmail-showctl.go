package main

import (
	"bufio"
	"fmt"
	"os"

	"github.com/notqmail/notqmail/src/showctl"
)

func init() { register("qmail-showctl", showctlMain) }

// showctlMain prints the configuration; like qmail-showctl, trouble goes to stdout.
func showctlMain(args []string) int {
	c, err := showctl.Default()
	if err != nil {
		fmt.Println("Oops!", err)
		return 111
	}
	w := bufio.NewWriter(os.Stdout)
	err = showctl.Show(w, c)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "qmail-showctl:", err)
		return 111
	}
	return 0
}
