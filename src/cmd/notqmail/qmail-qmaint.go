package main

import (
	"os"

	"github.com/notqmail/notqmail/src/qmaint"
)

func init() {
	register("qmail-qmaint", func(args []string) int { return qmaint.Main(args, os.Stdout, os.Stderr) })
}
