// Package spp runs SMTP plugins with the qmail-spp protocol, so plugins written for
// qmail-spp run unchanged under qmail-smtpd.
//
// control/smtpplugins (or $SPPCONFFILE; $NOSPP turns plugins off) lists plugins in
// sections: [connection], [helo], [mail], [rcpt], [data] and [auth], each section
// chosen by the first letter after '['. A plugin line is a program run directly, with
// no arguments (relative paths start at the qmail home), or ":command" run with
// /bin/sh -c. A plugin's stdin is empty, its stderr goes to the log, and every line
// it prints on stdout is a command:
//
//	A        accept: this command passes, no more plugins in this session
//	N        next: this command passes, skip the stage's remaining plugins
//	O        ok: like N, and skip qmail's own MAIL and RCPT checks
//	Emsg     refuse this command with msg (a complete reply: "553 sorry")
//	Rmsg     send msg and hang up
//	D        hang up without a word
//	LMmsg    refuse the next MAIL with msg (LR: each RCPT, LD: DATA) until RSET
//	Pmsg     send msg to the client now
//	Hline    add a header line to the message
//	Caddr    replace the MAIL or RCPT address
//	Svar=val set a variable for later plugins (RELAYCLIENT also lets the client relay)
//	Uvar     unset a variable
//
// A, N, O, E, R and D end the plugin's output; what follows them is ignored. A plugin
// that cannot be run, crashes, exits 120 or outlasts the timeout is a temporary
// failure of the command ("451 qmail-spp failure").
package spp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

// Stage is a point in the session where plugins run.
type Stage string

// The stages, named as control/smtpplugins names their sections.
const (
	Connect Stage = "connection"
	Helo    Stage = "helo"
	Mail    Stage = "mail"
	Rcpt    Stage = "rcpt"
	Data    Stage = "data"
	Auth    Stage = "auth"
)

func stageOf(section string) (Stage, bool) {
	if len(section) < 2 {
		return "", false
	}
	switch section[1] {
	case 'c':
		return Connect, true
	case 'h':
		return Helo, true
	case 'm':
		return Mail, true
	case 'r':
		return Rcpt, true
	case 'd':
		return Data, true
	case 'a':
		return Auth, true
	}
	return "", false
}

// Verdict is what a stage's plugins decided.
type Verdict struct {
	Print    []string         // P, E and R messages, in order, to send at once
	Refuse   bool             // E: the command is refused (its reply is in Print)
	Hangup   bool             // R or D: close the connection after Print
	NoChecks bool             // O: skip qmail's own checks
	Disable  bool             // A: no more plugins in this session
	Later    map[Stage]string // LM, LR, LD replies (CRLF-separated lines)
	Headers  []string         // H
	Change   string           // C: the new address; "" for none
	Set      map[string]string
	Unset    []string
	Err      error // the plugins failed: refuse with a temporary error
}

// Limits on what a plugin may say.
const (
	maxLine   = 1000
	maxOutput = 64 * 1024
)

// Runner runs the plugins of control/smtpplugins.
type Runner struct {
	Sections map[Stage][]string
	Dir      string        // working directory: the qmail home
	Timeout  time.Duration // per plugin; 0 means none
	Stderr   io.Writer     // where plugins' stderr goes; nil discards
}

// Load reads a plugins file. It returns nil, nil when the file does not exist (no
// plugins; qmail-spp would refuse to start, which protects nothing).
func Load(path string) (*Runner, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return Parse(b), nil
}

// Parse reads the smtpplugins format: qmail's control-file lines (trailing space
// removed, blank lines skipped), "[section]" headers, plugin lines. Lines before any
// known section, and '#' comments, are ignored.
func Parse(b []byte) *Runner {
	r := &Runner{Sections: map[Stage][]string{}}
	var cur Stage
	known := false
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimRight(l, " \t\r")
		if l == "" || l[0] == '#' {
			continue
		}
		if l[0] == '[' {
			cur, known = stageOf(l)
			continue
		}
		if known {
			r.Sections[cur] = append(r.Sections[cur], l)
		}
	}
	return r
}

// Run runs a stage's plugins in order with the environment base (the session's
// environment, "NAME=value") updated by set and unset, until one ends the stage.
func (r *Runner) Run(stage Stage, base []string, set map[string]string, unset map[string]bool) Verdict {
	var v Verdict
	env := map[string]string{}
	for _, kv := range base {
		k, val, _ := strings.Cut(kv, "=")
		env[k] = val
	}
	for k := range unset {
		delete(env, k)
	}
	for k, val := range set {
		env[k] = val
	}
	for _, p := range r.Sections[stage] {
		last, err := r.runOne(p, env, &v)
		if err != nil {
			v.Err = fmt.Errorf("%s: %w", p, err)
			return v
		}
		if last != 0 {
			switch last {
			case 'A':
				v.Disable = true
			case 'O':
				v.NoChecks = true
			case 'E':
				v.Refuse = true
			case 'R', 'D':
				v.Hangup = true
			}
			return v
		}
	}
	return v
}

func (r *Runner) runOne(p string, env map[string]string, v *Verdict) (last byte, err error) {
	ctx := context.Background()
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	var cmd *exec.Cmd
	if sh, ok := strings.CutPrefix(p, ":"); ok {
		cmd = exec.CommandContext(ctx, "/bin/sh", "-c", sh)
	} else {
		cmd = exec.CommandContext(ctx, p)
		cmd.Path = p // run it as named, relative to Dir, never from $PATH
		cmd.Err = nil
	}
	cmd.Dir = r.Dir
	cmd.Env = envList(env)
	cmd.Stderr = r.Stderr
	cmd.WaitDelay = time.Second
	// exec copies the output while the plugin runs, and stops waiting for it a
	// WaitDelay after the plugin exits: a process the plugin left in the
	// background with its standard output must not hold the session.
	var out capped
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		return 0, errors.New("can't execute")
	}
	werr := cmd.Wait()
	if errors.Is(werr, exec.ErrWaitDelay) {
		werr = nil
	}
	br := bufio.NewReaderSize(bytes.NewReader(out.b), maxLine)
	for last == 0 {
		line, rerr := br.ReadSlice('\n')
		tooLong := rerr == bufio.ErrBufferFull
		for rerr == bufio.ErrBufferFull { // skip the rest of an overlong line
			_, rerr = br.ReadSlice('\n')
		}
		if !tooLong {
			last = apply(bytes.TrimSuffix(line, []byte("\n")), env, v)
		}
		if rerr != nil {
			break
		}
	}
	if ctx.Err() != nil {
		return 0, errors.New("timed out")
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if !ee.Exited() {
			return 0, errors.New("child crashed")
		}
		if ee.ExitCode() == 120 {
			return 0, errors.New("can't execute")
		}
	} else if werr != nil {
		return 0, werr
	}
	return last, nil
}

// capped keeps the first maxOutput bytes written to it and drops the rest, so that a
// plugin writing more is neither blocked nor kept.
type capped struct{ b []byte }

func (c *capped) Write(p []byte) (int, error) {
	if room := maxOutput - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

// apply acts on one command line and returns its letter when it ends the output.
func apply(line []byte, env map[string]string, v *Verdict) byte {
	if len(line) < 1 {
		return 0
	}
	arg := clean(string(line[1:]))
	switch line[0] {
	case 'H':
		v.Headers = append(v.Headers, arg)
	case 'C':
		v.Change = arg
	case 'S':
		k, val, ok := strings.Cut(arg, "=")
		if ok && k != "" {
			env[k] = val
			if v.Set == nil {
				v.Set = map[string]string{}
			}
			v.Set[k] = val
		}
	case 'U':
		delete(env, arg)
		if v.Set != nil {
			delete(v.Set, arg)
		}
		v.Unset = append(v.Unset, arg)
	case 'A', 'O', 'N', 'D':
		return line[0]
	case 'E', 'R':
		v.Print = append(v.Print, arg)
		return line[0]
	case 'P':
		v.Print = append(v.Print, arg)
	case 'L':
		if arg == "" {
			return 0
		}
		var st Stage
		switch arg[0] {
		case 'M':
			st = Mail
		case 'R':
			st = Rcpt
		case 'D':
			st = Data
		default:
			return 0
		}
		if v.Later == nil {
			v.Later = map[Stage]string{}
		}
		if prev := v.Later[st]; prev != "" {
			v.Later[st] = prev + "\r\n" + arg[1:]
		} else {
			v.Later[st] = arg[1:]
		}
	}
	return 0
}

// clean replaces control characters: a plugin's text goes to the client and into
// headers, where a stray CR or NUL must not end up.
func clean(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		// A NUL ends a C string: the plugin sees what qmail-spp would pass.
		k, _, _ = strings.Cut(k, "\x00")
		v, _, _ = strings.Cut(v, "\x00")
		if k != "" && !strings.Contains(k, "=") {
			out = append(out, k+"="+v)
		}
	}
	sort.Strings(out)
	return out
}
