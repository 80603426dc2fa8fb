package main

import (
	"fmt"
	"os"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/smtpd"
)

func init() { register("qmail-smtpd", smtpdMain) }

// smtpdMain serves one SMTP session on stdin/stdout, as under tcpserver.
func smtpdMain(args []string) int {
	if len(args) > 0 {
		fmt.Fprintln(os.Stderr, "usage: qmail-smtpd")
		return 100
	}
	conn := smtpd.Stdio()
	// qmail-smtpd works in the qmail home: relative plugin paths start there.
	if err := os.Chdir(home.Dir()); err != nil {
		fmt.Fprintln(os.Stderr, "qmail-smtpd: unable to chdir to home:", err)
		conn.Write([]byte("421 unable to read controls (#4.3.0)\r\n"))
		return 111
	}
	cfg, closeCfg, err := smtpd.Load(control.Default(), os.LookupEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "qmail-smtpd: unable to read controls:", err)
		conn.Write([]byte("421 unable to read controls (#4.3.0)\r\n"))
		return 111
	}
	defer closeCfg()
	cfg.Queue = smtpd.QueueProgram(nil)
	cfg.Log = os.Stderr
	smtpd.Serve(conn, cfg)
	return 0
}
