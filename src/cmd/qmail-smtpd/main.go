// Command qmail-smtpd serves one SMTP session on stdin/stdout (under tcpserver), or
// with -l or socket activation listens itself. See qmail-smtpd(8) and package smtpd.
//
// It is its own binary, not a name of the multi-call binary: tcpserver starts one
// process per connection, and a program that links only what SMTP needs starts with
// fewer page faults, type tables and package initialisers.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/listener"
	"github.com/notqmail/notqmail/src/smtpd"
	"github.com/notqmail/notqmail/src/timerslack"
)

func main() {
	if err := home.EnterSandbox(); err != nil {
		fmt.Fprintln(os.Stderr, "qmail-smtpd:", err)
		os.Exit(111)
	}
	os.Exit(smtpdMain(os.Args[1:]))
}

func smtpdMain(args []string) int {
	fs := flag.NewFlagSet("qmail-smtpd", flag.ContinueOnError)
	listen := fs.String("l", "", "listen on `host:port` instead of serving stdin/stdout")
	maxConns := fs.Int("c", 0, "serve at most `n` connections at once (listener; default 40)")
	maxPerIP := fs.Int("i", 0, "at most `n` connections from one address (listener; default 20)")
	rules := fs.String("x", "", "access rules `file` in tcprules format, text or .cdb (listener)")
	localHost := fs.String("H", "", "TCPLOCALHOST `name` for listener sessions")
	implicitTLS := fs.Bool("T", false, "TLS from the first byte (port 465; also $SMTPS)")
	submission := fs.Bool("S", false, "submission: AUTH required before MAIL (ports 587, 465; also $SUBMISSION)")
	if err := fs.Parse(args); err != nil || fs.NArg() == 1 {
		fmt.Fprintln(os.Stderr, "usage: qmail-smtpd [-l host:port] [-c n] [-i n] [-x rules] [-H name] [-T] [-S] [hostname checkpassword [args...]]")
		return 100
	}
	if *listen != "" || listener.ForThisProcess() {
		// A listener is a daemon: coarse timers (timerslack explains why).
		if err := timerslack.Reexec(); err != nil {
			fmt.Fprintln(os.Stderr, "qmail-smtpd: warning: running with fine timers:", err)
		}
	}
	// As with the qmail-smtpd AUTH patch: "hostname checkpassword subprogram..."
	// turns on SMTP AUTH; the host name is accepted for compatibility.
	var checkpw []string
	if fs.NArg() >= 2 {
		checkpw = fs.Args()[1:]
	}
	// qmail-smtpd works in the qmail home: relative plugin paths start there.
	if err := os.Chdir(home.Dir()); err != nil {
		fmt.Fprintln(os.Stderr, "qmail-smtpd: unable to chdir to home:", err)
		if *listen == "" {
			io.WriteString(os.Stdout, "421 unable to read controls (#4.3.0)\r\n")
		}
		return 111
	}
	listeners, err := smtpd.Listeners(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "qmail-smtpd:", err)
		return 111
	}
	if listeners == nil {
		smtpd.Run(smtpd.Stdio(), smtpd.RunOptions{
			Control: control.Default(), ID: strconv.Itoa(os.Getpid()), Log: os.Stderr, CheckPassword: checkpw,
			ImplicitTLS: *implicitTLS, Submission: *submission,
		})
		return 0
	}
	err = smtpd.Listen(listeners, smtpd.ListenOptions{
		MaxConns: *maxConns, MaxPerIP: *maxPerIP, RulesFile: *rules, LocalHost: *localHost, Log: os.Stderr,
		CheckPassword: checkpw, ImplicitTLS: *implicitTLS, Submission: *submission,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "qmail-smtpd:", err)
		return 111
	}
	return 0
}
