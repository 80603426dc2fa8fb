package local

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/notqmail/notqmail/src/dotqmail"
	"github.com/notqmail/notqmail/src/queueclient"
)

// Helper runs the small programs that .qmail files call: forward, condredirect,
// bouncesaying, except and preline. Each method takes the program's arguments (after
// its name) and returns its exit code, which means to qmail-local what
// qmail-command(8) says: 0 delivered, 99 delivered and stop, 100 bounce, 111 retry.
type Helper struct {
	Stdin          *os.File  // the message; condredirect needs it seekable
	Stdout, Stderr io.Writer // the helpers' messages go to Stderr, as qmail's do
	// Getenv reads the environment qmail-local set up (default os.LookupEnv).
	Getenv func(string) (string, bool)
	// Queue forwards a message (default: qmail-queue through package queueclient).
	Queue func(msg io.Reader, sender string, recips []string) (qp int, err error)
}

func (h *Helper) defaults() {
	if h.Stdin == nil {
		h.Stdin = os.Stdin
	}
	if h.Stdout == nil {
		h.Stdout = os.Stdout
	}
	if h.Stderr == nil {
		h.Stderr = os.Stderr
	}
	if h.Getenv == nil {
		h.Getenv = os.LookupEnv
	}
	if h.Queue == nil {
		h.Queue = queueForward
	}
}

func (h *Helper) die(code int, format string, a ...any) int {
	fmt.Fprintf(h.Stderr, format+"\n", a...)
	return code
}

// run runs argv with the helper's standard input and output and returns its exit
// code. A program that cannot be run counts as exiting 111 when the reason is
// temporary and 100 otherwise, as qmail's helpers' children do when execvp fails.
// crashed is set when it was killed by a signal.
func (h *Helper) run(argv []string, stdin *os.File) (code int, crashed bool) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, h.Stdout, h.Stderr
	err := cmd.Run()
	if cmd.ProcessState == nil {
		if dotqmail.IsTemporary(err) && !errors.Is(err, exec.ErrNotFound) {
			return 111, false
		}
		return 100, false
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 0, true
	}
	return ws.ExitStatus(), false
}

// queue forwards the message on stdin, with the DTLINE header first, and reports
// like qmail's helpers: "name: fatal: reason" and 100 or 111 on failure.
func (h *Helper) queue(name, sender string, recips []string) (qp int, code int) {
	dtline, ok := h.Getenv("DTLINE")
	if !ok {
		return 0, h.die(100, "%s: fatal: DTLINE not set", name)
	}
	var rerr error
	msg := io.MultiReader(strings.NewReader(dtline), readerFunc(func(p []byte) (int, error) {
		n, err := h.Stdin.Read(p)
		if err != nil && err != io.EOF {
			rerr = err
		}
		return n, err
	}))
	qp, err := h.Queue(msg, sender, recips)
	if rerr != nil {
		return 0, h.die(111, "%s: fatal: unable to read message: %s", name, dotqmail.ErrText(rerr))
	}
	if err != nil {
		code := 111
		if queueclient.IsPermanent(err) {
			code = 100
		}
		return 0, h.die(code, "%s: fatal: %s", name, strings.TrimSpace(err.Error()))
	}
	return qp, 0
}

type readerFunc func([]byte) (int, error)

func (r readerFunc) Read(p []byte) (int, error) { return r(p) }

// Forward is forward address...: it forwards the message to every address, with
// $NEWSENDER as the envelope sender and $DTLINE added.
func (h *Helper) Forward(args []string) int {
	h.defaults()
	if len(args) == 0 {
		return h.die(100, "forward: usage: forward address [ address ... ]")
	}
	sender, ok := h.Getenv("NEWSENDER")
	if !ok {
		return h.die(100, "forward: fatal: NEWSENDER not set")
	}
	qp, code := h.queue("forward", sender, args)
	if code != 0 {
		return code
	}
	return h.die(0, "forward: qp %d", qp)
}

// CondRedirect is condredirect newaddress program [arg...]: when program exits 0
// the message is forwarded to newaddress (sender $SENDER) and condredirect exits 99,
// so the rest of the .qmail is skipped; when it exits 111 that is a temporary error;
// any other exit leaves the message alone (exit 0).
func (h *Helper) CondRedirect(args []string) int {
	h.defaults()
	if len(args) < 2 {
		return h.die(100, "condredirect: usage: condredirect newaddress program [ arg ... ]")
	}
	code, crashed := h.run(args[1:], h.Stdin)
	switch {
	case crashed:
		return h.die(111, "condredirect: fatal: child crashed")
	case code == 111:
		return h.die(111, "condredirect: fatal: temporary child error")
	case code != 0:
		return 0
	}
	if _, err := h.Stdin.Seek(0, io.SeekStart); err != nil {
		return h.die(111, "condredirect: fatal: unable to rewind: %s", dotqmail.ErrText(err))
	}
	sender, ok := h.Getenv("SENDER")
	if !ok {
		return h.die(100, "condredirect: fatal: SENDER not set")
	}
	qp, code := h.queue("condredirect", sender, args[:1])
	if code != 0 {
		return code
	}
	return h.die(99, "condredirect: qp %d", qp)
}

// BounceSaying is bouncesaying error [program [arg...]]: it bounces the message
// with the given text, either always or, with a program, when the program exits 0;
// 111 from the program is a temporary error and any other exit leaves the message
// alone.
func (h *Helper) BounceSaying(args []string) int {
	h.defaults()
	if len(args) < 1 {
		return h.die(100, "bouncesaying: usage: bouncesaying error [ program [ arg ... ] ]")
	}
	if len(args) > 1 {
		code, crashed := h.run(args[1:], h.Stdin)
		switch {
		case crashed:
			return h.die(111, "bouncesaying: fatal: child crashed")
		case code == 111:
			return h.die(111, "bouncesaying: fatal: temporary child error")
		case code != 0:
			return 0
		}
	}
	return h.die(100, "%s", args[0])
}

// Except is except program [arg...]: it runs program and turns its success into a
// bounce (100) and its permanent failure into success (0); 111 stays temporary.
func (h *Helper) Except(args []string) int {
	h.defaults()
	if len(args) < 1 {
		return h.die(100, "except: usage: except program [ arg ... ]")
	}
	code, crashed := h.run(args, h.Stdin)
	switch {
	case crashed:
		return h.die(111, "except: fatal: child crashed")
	case code == 0:
		return 100
	case code == 111:
		return h.die(111, "except: fatal: temporary child error")
	}
	return 0
}

// Preline is preline [-frdFRD] cmd [arg...]: it runs cmd with the message on a pipe,
// preceded by the UFLINE, RPLINE and DTLINE lines (-f, -r, -d leave one out; -F, -R,
// -D put it back), for programs that expect an mbox-style message. It exits as cmd
// does.
func (h *Helper) Preline(args []string) int {
	h.defaults()
	usage := func() int { return h.die(100, "preline: usage: preline cmd [ arg ... ]") }
	var lines [3]string
	for i, name := range []string{"UFLINE", "RPLINE", "DTLINE"} {
		v, ok := h.Getenv(name)
		if !ok {
			return usage()
		}
		lines[i] = v
	}
	use := [3]bool{true, true, true}
	for len(args) > 0 && len(args[0]) > 1 && args[0][0] == '-' {
		opt := args[0]
		args = args[1:]
		if opt == "--" {
			break
		}
		for _, c := range opt[1:] {
			switch c {
			case 'f', 'F':
				use[0] = c == 'F'
			case 'r', 'R':
				use[1] = c == 'R'
			case 'd', 'D':
				use[2] = c == 'D'
			default:
				return usage()
			}
		}
	}
	if len(args) == 0 {
		return usage()
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		return h.die(111, "preline: fatal: unable to create pipe: %s", dotqmail.ErrText(err))
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pr, h.Stdout, h.Stderr
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		code := 100
		if dotqmail.IsTemporary(err) && !errors.Is(err, exec.ErrNotFound) {
			code = 111
		}
		return h.die(code, "preline: fatal: unable to run %s: %s", args[0], dotqmail.ErrText(err))
	}
	pr.Close()
	werr := func() error {
		for i, l := range lines {
			if use[i] {
				if _, err := io.WriteString(pw, l); err != nil {
					return err
				}
			}
		}
		_, err := io.Copy(pw, h.Stdin)
		return err
	}()
	pw.Close()
	if werr != nil {
		// Like qmail's preline: a command that stops reading early is an error.
		cmd.Wait()
		return h.die(111, "preline: fatal: unable to copy input: %s", dotqmail.ErrText(werr))
	}
	cmd.Wait()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return h.die(111, "preline: fatal: child crashed")
	}
	return ws.ExitStatus()
}
