package main

import (
	"os"

	"github.com/notqmail/notqmail/src/inject"
)

func init() { register("qmail-inject", qmailInjectMain) }

// qmailInjectMain reads a message, completes its header and queues it (package inject).
func qmailInjectMain(args []string) int {
	return inject.Main(args, os.LookupEnv, os.Stdin, os.Stdout, os.Stderr)
}
