package main

import (
	"fmt"
	"os"
	"syscall"

	"github.com/notqmail/notqmail/src/mbox"
)

func init() { register("maildir2mbox", maildir2mboxMain) }

// maildir2mboxMain moves the messages of $MAILDIR to the end of the mbox $MAIL,
// through the temporary copy $MAILTMP.
func maildir2mboxMain(args []string) int {
	syscall.Umask(0o077)
	fatal := func(msg string) int {
		fmt.Fprintln(os.Stderr, "maildir2mbox: fatal:", msg)
		return 111
	}
	mail, ok := os.LookupEnv("MAIL")
	if !ok {
		return fatal("MAIL not set")
	}
	tmp, ok := os.LookupEnv("MAILTMP")
	if !ok {
		return fatal("MAILTMP not set")
	}
	dir, ok := os.LookupEnv("MAILDIR")
	if !ok {
		return fatal("MAILDIR not set")
	}
	if err := mbox.FromMaildir(dir, mail, tmp, os.Stderr); err != nil {
		return fatal(err.Error())
	}
	return 0
}
