package main

import (
	"os"

	"github.com/notqmail/notqmail/src/sendmail"
)

func init() { register("datemail", datemailMain) }

// datemailMain is sendmail with a local-time Date field.
func datemailMain(args []string) int {
	return sendmail.DateMail(args, os.LookupEnv, os.Stdin, os.Stdout, os.Stderr)
}
