package main

import (
	"os"
	"time"

	"github.com/notqmail/notqmail/src/splogger"
)

func init() { register("splogger", sploggerMain) }

// sploggerMain: splogger [tag [facility]], log lines on stdin to syslog.
func sploggerMain(args []string) int {
	tag, facility := splogger.ParseArgs(args)
	splogger.Run(os.Stdin, &splogger.Syslog{Path: "/dev/log", Tag: tag}, facility, time.Now)
	return 0
}
