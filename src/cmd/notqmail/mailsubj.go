package main

import (
	"os"

	"github.com/notqmail/notqmail/src/inject"
)

func init() { register("mailsubj", mailsubjMain) }

// mailsubjMain sends its input with a subject to the recipients given.
func mailsubjMain(args []string) int {
	return inject.MailSubj(args, os.LookupEnv, os.Stdin, os.Stdout, os.Stderr)
}
