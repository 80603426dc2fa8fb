package main

import (
	"os"

	"github.com/notqmail/notqmail/src/sendmail"
)

func init() {
	// Sites link mailq and newaliases to sendmail, which acts on the name it is run as.
	for _, name := range []string{"sendmail", "mailq", "newaliases"} {
		register(name, sendmailAs(name))
	}
}

// sendmailAs takes Sendmail's command line and runs qmail-inject, qmail-smtpd or
// qmail-qread (package sendmail).
func sendmailAs(name string) program {
	return func(args []string) int {
		return sendmail.Main(name, args, os.LookupEnv, os.Stdin, os.Stdout, os.Stderr)
	}
}
