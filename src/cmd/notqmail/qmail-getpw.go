package main

import (
	"fmt"
	"os"

	"github.com/notqmail/notqmail/src/getpw"
)

func init() { register("qmail-getpw", getpwMain) }

// getpwMain is qmail-getpw local: it prints user, uid, gid, home, dash and ext, each
// followed by a NUL, for qmail-lspawn; its exit codes are qmail-getpw's.
func getpwMain(args []string) int {
	if len(args) < 1 {
		return getpw.ExitUsage
	}
	e, err := getpw.Default(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "qmail-getpw:", err)
		if ge, ok := err.(*getpw.Error); ok {
			return ge.Code
		}
		return getpw.ExitSys
	}
	if _, err := os.Stdout.Write(e.Bytes()); err != nil {
		return getpw.ExitSys
	}
	return 0
}
