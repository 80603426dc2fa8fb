package main

import (
	"fmt"
	"os"

	"github.com/notqmail/notqmail/src/maildir"
)

func init() { register("maildirmake", maildirmakeMain) }

// maildirmakeMain creates the maildir named by its argument.
func maildirmakeMain(args []string) int {
	if len(args) != 1 || args[0] == "" {
		fmt.Fprintln(os.Stderr, "maildirmake: usage: maildirmake name")
		return 100
	}
	if err := maildir.Make(args[0]); err != nil {
		fmt.Fprintln(os.Stderr, "maildirmake: fatal:", err)
		return 111
	}
	return 0
}
