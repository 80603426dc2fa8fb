package main

import (
	"fmt"
	"os"
	"syscall"

	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/users"
)

func init() { register("qmail-newu", newuMain) }

// newuMain compiles users/assign into users/cdb, atomically through users/cdb.tmp.
func newuMain(args []string) int {
	if len(args) > 0 {
		fmt.Fprintln(os.Stderr, "qmail-newu: usage: qmail-newu")
		return 100
	}
	// As qmail: users/cdb comes out 0644 whatever the caller's umask.
	syscall.Umask(0o033)
	if err := users.NewU(home.Path("users", "assign"), home.Path("users", "cdb")); err != nil {
		fmt.Fprintln(os.Stderr, "qmail-newu: fatal:", err)
		return 111
	}
	return 0
}
