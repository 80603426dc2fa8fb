// Package sendmail is qmail's sendmail wrapper: it takes the command lines that
// programs written for Sendmail pass (cron, PHP, git, mutt, logwatch, mailx, ...) and
// turns them into a qmail-inject run, a qmail-smtpd session (-bs) or a queue listing
// (-bp, or when run as mailq).
//
// Options that only tune Sendmail's own behaviour (delivery and error modes, DSN
// requests, 8BITMIME, verbosity) are accepted and ignored, as qmail's sendmail does:
// qmail has one delivery mode and always bounces to the envelope sender. Options that
// ask for something qmail does not do (running the queue, daemon or test modes, another
// configuration file) are refused with a message and exit code 100, never silently
// ignored.
package sendmail

import (
	"fmt"
	"strings"
)

// Mode is what an invocation asks for.
type Mode int

const (
	Inject    Mode = iota // send a message (-bm, the default)
	SMTP                  // -bs: an SMTP session on stdin/stdout, through qmail-smtpd
	ListQueue             // -bp or mailq: list the queue, through qmail-qread
)

// Invocation is a parsed sendmail command line.
type Invocation struct {
	Mode       Mode
	FromHeader bool     // -t: recipients from To, Cc, Bcc too
	Sender     *string  // -f or -r: the envelope sender
	FullName   *string  // -F: the sender's name for the From field
	Recipients []string // the arguments after the options
}

// UsageError is a command line sendmail cannot honour.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usage is the usage message.
const Usage = "usage: sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]"

// argOptions take an argument, attached (-fjoe) or as the next word (-f joe).
const argOptions = "efpoBFbrNRVXLhOA"

// refused explains the options that are understood but not supported.
var refused = map[byte]string{
	'q': "qmail-send runs the queue by itself; send it SIGALRM to retry deferred mail now",
	'C': "qmail has no sendmail.cf; its configuration is in control/",
	'd': "Sendmail debugging is not supported",
	'I': "qmail has no aliases database; use .qmail files or fastforward",
}

// Parse reads a command line: name is the name sendmail was run as (mailq and
// newaliases behave as in Sendmail), args the arguments after it.
func Parse(name string, args []string) (*Invocation, error) {
	inv := &Invocation{}
	i := 0
options:
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			if why, ok := refused[c]; ok {
				return nil, &UsageError{fmt.Sprintf("option -%s is not supported: %s", a[j:], why)}
			}
			if c == 'E' || c == 'J' {
				// Sony NEWS-OS options with an optional attached argument.
				continue options
			}
			if !strings.ContainsRune(argOptions, rune(c)) {
				if !strings.ContainsRune("vimtxUGn", rune(c)) {
					return nil, &UsageError{fmt.Sprintf("unknown option -%c; %s", c, Usage)}
				}
				if c == 't' {
					inv.FromHeader = true
				}
				continue
			}
			val := a[j+1:]
			if val == "" {
				if i+1 >= len(args) {
					return nil, &UsageError{fmt.Sprintf("option -%c needs an argument; %s", c, Usage)}
				}
				i++
				val = args[i]
			}
			if err := inv.option(c, val); err != nil {
				return nil, err
			}
			continue options
		}
	}
	inv.Recipients = args[i:]
	switch name {
	case "mailq":
		inv.Mode = ListQueue
	case "newaliases":
		return nil, &UsageError{"please use fastforward/newaliases instead"}
	}
	if inv.Mode == Inject && !inv.FromHeader && len(inv.Recipients) == 0 {
		return nil, &UsageError{"no recipients given (use -t to take them from the header); " + Usage}
	}
	return inv, nil
}

// option applies an option that takes a value.
func (inv *Invocation) option(c byte, val string) error {
	switch c {
	case 'f', 'r':
		inv.Sender = &val
	case 'F':
		inv.FullName = &val
	case 'b':
		switch val {
		case "m":
			inv.Mode = Inject
		case "p":
			inv.Mode = ListQueue
		case "s":
			inv.Mode = SMTP
		case "i":
			return &UsageError{"please use fastforward/newaliases instead"}
		default:
			return &UsageError{fmt.Sprintf("mode -b%s is not supported (only -bm, -bp and -bs are); %s", val, Usage)}
		}
	}
	// -e, -o, -p, -B, -N, -R, -V, -X, -L, -h, -O, -A: qmail has one delivery and error
	// mode, no DSN and no Sendmail logging; these change nothing about where mail goes.
	return nil
}

// InjectArgs returns qmail-inject's arguments for an Inject invocation: -H with -t
// (header and argument recipients), -a otherwise, then -f sender if given.
func (inv *Invocation) InjectArgs() []string {
	a := []string{"-a"}
	if inv.FromHeader {
		a[0] = "-H"
	}
	if inv.Sender != nil {
		a = append(a, "-f", *inv.Sender)
	}
	a = append(a, "--")
	return append(a, inv.Recipients...)
}

// InjectEnv returns the environment changes for qmail-inject: with a sender, its user
// and host become QMAILUSER and QMAILHOST (so the From field matches it) and the name
// and host variables are cleared; -F sets MAILNAME. A nil value unsets the variable.
func (inv *Invocation) InjectEnv() map[string]*string {
	env := map[string]*string{}
	if s := inv.Sender; s != nil {
		for _, n := range []string{"QMAILNAME", "MAILNAME", "NAME", "QMAILHOST", "MAILHOST"} {
			env[n] = nil
		}
		user := *s
		if at := strings.LastIndexByte(*s, '@'); at >= 0 {
			host := (*s)[at+1:]
			user = (*s)[:at]
			env["QMAILHOST"] = &host
		}
		env["QMAILUSER"] = &user
	}
	// qmail's sendmail sets MAILNAME before clearing it for -f, losing -F; applied
	// last here, -F keeps the name the caller asked for.
	if inv.FullName != nil {
		name := *inv.FullName
		env["MAILNAME"] = &name
	}
	return env
}
