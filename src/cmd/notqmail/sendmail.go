package main

import (
	"os"

	"github.com/notqmail/notqmail/src/sendmail"
)

func init() { register("sendmail", sendmailMain) }

// sendmailMain takes Sendmail's command line and runs qmail-inject, qmail-smtpd or
// qmail-qread (package sendmail).
func sendmailMain(args []string) int {
	return sendmail.Main("sendmail", args, os.LookupEnv, os.Stdin, os.Stdout, os.Stderr)
}
