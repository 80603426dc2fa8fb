package inject

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// LocalDateField is the Date field predate writes: the local time and its offset from
// UTC, "Date: 2 Jan 2026 14:04:05 +0100\n".
func LocalDateField(t time.Time) string {
	return "Date: " + t.Format("2 Jan 2006 15:04:05 -0700") + "\n"
}

// Predate is the predate program: it runs args[0] (searched in PATH) with args[1:],
// feeding it a Date field in local time followed by stdin, and returns the child's
// exit code.
func Predate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "predate: usage: predate child")
		return 100
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Stdin = io.MultiReader(strings.NewReader(LocalDateField(time.Now())), stdin)
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.Exited():
		return ee.ExitCode()
	case errors.As(err, &ee):
		fmt.Fprintln(stderr, "predate: fatal: child crashed")
		return 111
	case errors.Is(err, syscall.EPIPE):
		// The child stopped reading and exited 0; its status is what counts.
		return 0
	}
	fmt.Fprintf(stderr, "predate: fatal: unable to run %s: %v\n", args[0], err)
	return 111
}

// MailSubj is the mailsubj program: it sends stdin as the body of a message with
// subject args[0] to the recipients args[1:], through qmail-inject.
func MailSubj(args []string, env Env, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) < 2 {
		fmt.Fprintln(stderr, "mailsubj: usage: mailsubj subject recip ...")
		return 100
	}
	// The recipients go into To as one line, as qmail's script does; qmail-inject
	// separates them and takes them from there.
	header := "Subject: " + oneLine(args[0]) + "\nTo: " + oneLine(strings.Join(args[1:], " ")) + "\n\n"
	return Main(nil, env, io.MultiReader(strings.NewReader(header), stdin), stdout, stderr)
}

// oneLine keeps an argument from adding header lines of its own.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}
