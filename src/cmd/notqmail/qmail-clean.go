package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/notqmail/notqmail/src/clean"
	"github.com/notqmail/notqmail/src/queue"
)

func init() { register("qmail-clean", cleanMain) }

func cleanMain(args []string) int {
	q := queue.Default()
	if err := os.Chdir(q.Dir); err != nil {
		return 111
	}
	q.Dir = "." // short relative paths: a walk of two or three components per call
	signal.Ignore(syscall.SIGPIPE)
	if err := clean.Serve(q, pipeFile(0, "qmail-send"), pipeFile(1, "qmail-send")); err != nil {
		return 100
	}
	return 0
}
