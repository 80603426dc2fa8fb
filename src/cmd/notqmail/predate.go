package main

import (
	"os"

	"github.com/notqmail/notqmail/src/inject"
)

func init() { register("predate", predateMain) }

// predateMain runs a program with a local-time Date field in front of its input.
func predateMain(args []string) int {
	return inject.Predate(args, os.Stdin, os.Stdout, os.Stderr)
}
