package sendmail

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/inject"
)

// Main is the sendmail program run as name (sendmail, mailq or newaliases) with args;
// env is its environment (os.LookupEnv when nil). It returns the exit code.
func Main(name string, args []string, env inject.Env, stdin io.Reader, stdout, stderr io.Writer) int {
	if env == nil {
		env = os.LookupEnv
	}
	inv, err := Parse(name, args)
	if err != nil {
		fmt.Fprintf(stderr, "sendmail: fatal: %v\n", err)
		return 100
	}
	switch inv.Mode {
	case ListQueue:
		return runChild("qmail-qread", nil, nil, stdin, stdout, stderr)
	case SMTP:
		// As qmail's sendmail: a local SMTP session looks like a trusted TCP client,
		// unless the caller already set up a UCSPI environment.
		var extra []string
		if _, ok := env("PROTO"); !ok {
			extra = []string{"RELAYCLIENT=", "DATABYTES=0", "PROTO=TCP",
				"TCPLOCALIP=127.0.0.1", "TCPLOCALHOST=localhost",
				"TCPREMOTEIP=127.0.0.1", "TCPREMOTEHOST=localhost", "TCPREMOTEINFO=sendmail-bs"}
		}
		return runChild("qmail-smtpd", nil, extra, stdin, stdout, stderr)
	}
	changes := inv.InjectEnv()
	injectEnv := func(n string) (string, bool) {
		if v, ok := changes[n]; ok {
			if v == nil {
				return "", false
			}
			return *v, true
		}
		return env(n)
	}
	return inject.Main(inv.InjectArgs(), injectEnv, stdin, stdout, stderr)
}

// runChild runs $QMAILHOME/bin/prog with the process environment plus extra and
// returns its exit code.
func runChild(prog string, args, extra []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := exec.Command(home.Path("bin", prog), args...)
	cmd.Dir = home.Dir()
	cmd.Env = append(os.Environ(), extra...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.Exited():
		return ee.ExitCode()
	case errors.As(err, &ee):
		fmt.Fprintf(stderr, "sendmail: fatal: %s crashed\n", prog)
		return 111
	}
	fmt.Fprintf(stderr, "sendmail: fatal: unable to run %s: %v\n", prog, err)
	return 111
}

// DateMail is the datemail program: sendmail with a Date field in local time put in
// front of the message (qmail's "predate sendmail"), for senders whose Date should
// show their own time zone.
func DateMail(args []string, env inject.Env, stdin io.Reader, stdout, stderr io.Writer) int {
	in := io.MultiReader(strings.NewReader(inject.LocalDateField(time.Now())), stdin)
	return Main("sendmail", args, env, in, stdout, stderr)
}
