package main

import (
	"fmt"
	"os"

	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/users"
)

func init() { register("qmail-pw2u", pw2uMain) }

// pw2uMain turns passwd lines on stdin into a users/assign on stdout.
func pw2uMain(args []string) int {
	o, err := users.ParsePW2UArgs(args, home.Path("users"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "qmail-pw2u:", err)
		fmt.Fprintln(os.Stderr, "qmail-pw2u: usage: qmail-pw2u [ -/ohHuUC ] [ -c delim ] < passwd > assign")
		return 100
	}
	if err := users.PW2U(os.Stdin, os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "qmail-pw2u: fatal:", err)
		return 111
	}
	return 0
}
