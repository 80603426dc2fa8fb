// Package local is qmail-local: it delivers one message to one local address as the
// address's .qmail file says (dot-qmail(5)), to maildirs, mbox files, programs and
// forwarding addresses, with qmail-local's checks, environment and exit codes.
//
// The outcome is qmail-local's: exit code 0 (delivered), 100 (permanent failure: the
// message bounces) or 111 (temporary failure: qmail-send retries the whole .qmail
// later, so deliveries that already succeeded are repeated). A report in qmail-local's
// wording goes to the output, which qmail-lspawn passes on to the log and bounces.
//
// Several instructions are done in file order; the first failure stops processing.
// Forwards are collected and queued together, as one message, after every other
// instruction has succeeded; a program that exits 99 ends processing after its line
// with the forwards seen so far still queued.
package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/notqmail/notqmail/src/dotqmail"
	"github.com/notqmail/notqmail/src/maildir"
	"github.com/notqmail/notqmail/src/mbox"
	"github.com/notqmail/notqmail/src/queueclient"
)

// Exit codes, as qmail-local's.
const (
	OK        = 0
	Permanent = 100
	Temporary = 111
)

// Params are qmail-local's arguments: qmail-local [-nN] user homedir local dash ext
// domain sender defaultdelivery.
type Params struct {
	User            string
	Home            string // must be absolute
	Local           string // the recipient's local part
	Dash            string // "" for the bare user, usually "-" otherwise
	Ext             string
	Host            string // the recipient's domain
	Sender          string
	DefaultDelivery string // used when the .qmail is empty, or missing for the bare user
	DryRun          bool   // -n: say what would be done instead of doing it
}

// Options are the seams around the delivery; zero values take the defaults.
type Options struct {
	// Out receives the report; programs write their output there too.
	Out io.Writer
	// Queue forwards a message (default: through qmail-queue, see package
	// queueclient). It returns the queue program's pid, qmail's "qp".
	Queue func(msg io.Reader, sender string, recips []string) (qp int, err error)
	// Environ is the environment the program deliveries start from (default
	// os.Environ()).
	Environ []string
	// Now is the delivery time, for the mbox "From " line (default time.Now).
	Now func() time.Time
	// ProgramTimeout ends a program delivery that runs longer, as a temporary
	// failure (default DefaultProgramTimeout).
	ProgramTimeout time.Duration
	// GroupSync, if set, makes Maildir deliveries durable with syncfs calls shared
	// with the process's other deliveries (maildir.DeliverSync), where an exec'ed
	// qmail-local fsyncs the file and new/. A long-running worker sets it.
	GroupSync *maildir.GroupSync
}

// DefaultProgramTimeout bounds one program delivery, as qmail bounds a maildir
// delivery (24 hours), so a hung program cannot hold a delivery slot forever.
const DefaultProgramTimeout = 24 * time.Hour

// failure ends the delivery with an exit code and qmail-local's report text.
type failure struct {
	code int
	msg  string
}

func (f *failure) Error() string { return f.msg }

func temp(format string, a ...any) *failure {
	return &failure{Temporary, fmt.Sprintf(format, a...)}
}

func perm(format string, a ...any) *failure {
	return &failure{Permanent, fmt.Sprintf(format, a...)}
}

// delivery is the state of one qmail-local run.
type delivery struct {
	p      Params
	opt    Options
	msg    *os.File
	env    map[string]string
	dtline string
	rpline string
	ufline string
	sender string // NEWSENDER: the envelope sender for forwards

	files, forwards, programs int
	stop                      bool // a program exited 99
	qp                        int
}

// Deliver delivers the message in msg (which must be seekable: every delivery reads
// it from the start) and returns the exit code; the report is written to opt.Out.
func Deliver(p Params, msg *os.File, opt Options) int {
	if opt.Out == nil {
		opt.Out = io.Discard
	}
	if opt.Queue == nil {
		opt.Queue = queueForward
	}
	if opt.Environ == nil {
		opt.Environ = os.Environ()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.ProgramTimeout <= 0 {
		opt.ProgramTimeout = DefaultProgramTimeout
	}
	d := &delivery{p: p, opt: opt, msg: msg}
	if err := d.run(); err != nil {
		var f *failure
		if !errors.As(err, &f) {
			f = temp("%s. (#4.3.0)", err)
		}
		if f.msg != "" { // a failed program's own output is the report
			io.WriteString(opt.Out, f.msg+"\n")
		}
		return f.code
	}
	fmt.Fprintf(opt.Out, "did %d+%d+%d\n", d.files, d.forwards, d.programs)
	if d.qp != 0 {
		fmt.Fprintf(opt.Out, "qp %d\n", d.qp)
	}
	return OK
}

// Usage is qmail-local's usage message.
const Usage = "qmail-local: usage: qmail-local [ -nN ] user homedir local dash ext domain sender aliasempty"

func (d *delivery) run() error {
	p := d.p
	if !filepath.IsAbs(p.Home) {
		return perm("%s", Usage)
	}
	if err := d.checkHome(); err != nil {
		return err
	}

	d.env = map[string]string{
		"HOST":      p.Host,
		"HOME":      p.Home,
		"USER":      p.User,
		"LOCAL":     p.Local,
		"RECIPIENT": p.Local + "@" + p.Host,
	}
	d.dtline = DeliveredTo(p.Local, p.Host)
	d.env["DTLINE"] = d.dtline
	if !p.DryRun {
		if err := d.checkLoop(); err != nil {
			return err
		}
	}
	d.env["SENDER"] = p.Sender
	d.rpline = ReturnPath(p.Sender)
	d.env["RPLINE"] = d.rpline
	d.ufline = mbox.FromLine(p.Sender, d.opt.Now())
	d.env["UFLINE"] = d.ufline
	d.env["EXT"] = p.Ext
	for i, x := range extParts(p.Ext) {
		d.env[fmt.Sprintf("EXT%d", i+2)] = x
	}
	for i, h := range hostParts(p.Host) {
		d.env[fmt.Sprintf("HOST%d", i+2)] = h
	}

	found, ok, err := dotqmail.Search(p.Home, p.Dash, p.Ext)
	if err != nil {
		return temp("%s", err)
	}
	if !ok && p.Dash != "" {
		return perm("Sorry, no mailbox here by that name. (#5.1.1)")
	}
	if found.HasDefault {
		d.env["DEFAULT"] = found.Default
	}
	if d.sender, err = d.newSender(); err != nil {
		return temp("%s", err)
	}
	d.env["NEWSENDER"] = d.sender

	text, forwardOnly := found.Data, found.ForwardOnly
	if len(text) == 0 {
		text, forwardOnly = []byte(p.DefaultDelivery), false
	}
	file, err := dotqmail.Parse(text)
	// Nothing at all to follow (an empty defaultdelivery) is a blank first line, as
	// in qmail: the message must not vanish silently.
	if err != nil || len(text) == 0 {
		return temp("Uh-oh: first line of .qmail file is blank. (#4.2.1)")
	}
	return d.follow(file, forwardOnly)
}

func (d *delivery) checkHome() error {
	fi, err := os.Stat(d.p.Home)
	if err != nil {
		return temp("Unable to switch to %s: %s. (#4.3.0)", d.p.Home, dotqmail.ErrText(err))
	}
	if !fi.IsDir() {
		return temp("Unable to switch to %s: %s. (#4.3.0)", d.p.Home, syscall.ENOTDIR.Error())
	}
	// qmail-local changes into the home directory; be refused where it would be.
	if err := syscall.Access(d.p.Home, 1); err != nil {
		return temp("Unable to switch to %s: %s. (#4.3.0)", d.p.Home, dotqmail.ErrText(err))
	}
	if fi.Mode().Perm()&dotqmail.Patrn != 0 {
		return temp("Uh-oh: home directory is writable. (#4.7.0)")
	}
	if fi.Mode()&os.ModeSticky != 0 {
		if !d.p.DryRun {
			return temp("Home directory is sticky: user is editing his .qmail file. (#4.2.1)")
		}
		io.WriteString(d.opt.Out, "Warning: home directory is sticky.\n")
	}
	return nil
}

func (d *delivery) rewind() error {
	if _, err := d.msg.Seek(0, io.SeekStart); err != nil {
		return temp("Unable to rewind message. (#4.3.0)")
	}
	return nil
}

// checkLoop bounces a message whose header already has this address's Delivered-To
// line: it has been here before and would loop forever.
func (d *delivery) checkLoop() error {
	if err := d.rewind(); err != nil {
		return err
	}
	r := bufio.NewReaderSize(d.msg, max(64*1024, len(d.dtline)+1))
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// Longer than any Delivered-To line of ours: skip the rest of it.
			for err == bufio.ErrBufferFull {
				_, err = r.ReadSlice('\n')
			}
			if err == nil {
				continue
			}
		}
		if err == io.EOF {
			return nil // an unterminated last line is not compared, as in qmail
		}
		if err != nil {
			return temp("Unable to read message: %s. (#4.3.0)", dotqmail.ErrText(err))
		}
		if len(line) <= 1 {
			return nil // end of header
		}
		if string(line) == d.dtline {
			return perm("This message is looping: it already has my Delivered-To line. (#5.4.6)")
		}
	}
}

// newSender is the envelope sender for forwards: local-owner@host when a -owner file
// exists, the VERP form local-owner-@host-@[] when -owner-default exists too, and
// otherwise (and always for bounces) the original sender.
func (d *delivery) newSender() (string, error) {
	p := d.p
	if p.Sender == "" || p.Sender == "#@[]" {
		return p.Sender, nil
	}
	owner, err := dotqmail.Exists(p.Home, p.Dash, p.Ext, "-owner")
	if err != nil || !owner {
		return p.Sender, err
	}
	verp, err := dotqmail.Exists(p.Home, p.Dash, p.Ext, "-owner-default")
	if err != nil {
		return "", err
	}
	if verp {
		return p.Local + "-owner-@" + p.Host + "-@[]", nil
	}
	return p.Local + "-owner@" + p.Host, nil
}

func (d *delivery) say(kind, target string) {
	io.WriteString(d.opt.Out, kind+" "+target+"\n")
}

func (d *delivery) follow(file dotqmail.File, forwardOnly bool) error {
	var recips []string
	for _, in := range file.Instructions {
		switch in.Kind {
		case dotqmail.List:
			forwardOnly = true
		case dotqmail.Mbox, dotqmail.Maildir:
			d.files++
			if forwardOnly {
				return temp("Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)")
			}
			if d.p.DryRun {
				d.say(in.Kind.String(), in.Target)
			} else if err := d.deliverFile(in); err != nil {
				return err
			}
		case dotqmail.Program:
			d.programs++
			if forwardOnly {
				return temp("Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)")
			}
			if d.p.DryRun {
				d.say("program", in.Target)
			} else if err := d.runProgram(in.Target); err != nil {
				return err
			}
		case dotqmail.Forward:
			d.forwards++
			if d.p.DryRun {
				d.say("forward", in.Target)
			} else {
				recips = append(recips, in.Target)
			}
		}
		if d.stop {
			break
		}
	}
	if len(recips) > 0 {
		return d.forward(recips)
	}
	return nil
}

func (d *delivery) path(target string) string {
	if filepath.IsAbs(target) {
		return target
	}
	return filepath.Join(d.p.Home, target)
}

func (d *delivery) deliverFile(in dotqmail.Instruction) error {
	if err := d.rewind(); err != nil {
		return err
	}
	if in.Kind == dotqmail.Maildir {
		_, err := maildir.DeliverSync(d.path(in.Target), []byte(d.rpline+d.dtline), d.msg, d.opt.GroupSync)
		var nm *maildir.NoMaildirError
		var re *maildir.ReadError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &nm):
			return temp("Unable to chdir to maildir. (#4.2.1)")
		case errors.As(err, &re):
			return temp("Unable to read message. (#4.3.0)")
		default:
			return temp("Temporary error on maildir delivery: %s. (#4.3.0)", dotqmail.ErrText(err))
		}
	}
	if err := mbox.Deliver(d.path(in.Target), []byte(d.ufline+d.rpline+d.dtline), d.msg); err != nil {
		return temp("%s", err)
	}
	return nil
}

// environ is the program's environment: the inherited one with qmail-local's
// variables set, and DEFAULT only when a -default file matched.
func (d *delivery) environ() []string {
	var out []string
	for _, kv := range d.opt.Environ {
		name, _, _ := strings.Cut(kv, "=")
		if _, ours := d.env[name]; ours || name == "DEFAULT" {
			continue
		}
		out = append(out, kv)
	}
	names := make([]string, 0, len(d.env))
	for k := range d.env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		out = append(out, k+"="+d.env[k])
	}
	return out
}

// runProgram runs one |command line through /bin/sh -c, with the message on its
// (seekable) standard input and its output in the report, and maps its exit code as
// qmail-command(8) says.
func (d *delivery) runProgram(command string) error {
	if err := d.rewind(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.opt.ProgramTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Dir = d.p.Home
	cmd.Env = d.environ()
	cmd.Stdin = d.msg
	cmd.Stdout = d.opt.Out
	cmd.Stderr = d.opt.Out
	// Its own process group, so a timeout ends everything the command started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	st := cmd.ProcessState
	if st == nil {
		return temp("Unable to run /bin/sh: %s. (#4.3.0)", dotqmail.ErrText(err))
	}
	ws, _ := st.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		if ctx.Err() == context.DeadlineExceeded {
			return temp("Timeout on program delivery. (#4.3.0)")
		}
		return temp("Aack, child crashed. (#4.3.0)")
	}
	return programResult(ws.ExitStatus(), &d.stop)
}

// programResult maps a program's exit code: 0 success, 99 success and stop, 100 and
// the sysexits codes for permanent errors (64, 65, 70, 76, 77, 78, 112) bounce, every
// other code is temporary.
func programResult(code int, stop *bool) error {
	switch code {
	case 0:
		return nil
	case 99:
		*stop = true
		return nil
	case 100, 64, 65, 70, 76, 77, 78, 112:
		return &failure{code: Permanent}
	}
	return &failure{code: Temporary}
}

// forward queues the message once for all forwarding addresses, with the
// Delivered-To line added and the (possibly -owner) sender.
func (d *delivery) forward(recips []string) error {
	if err := d.rewind(); err != nil {
		return err
	}
	qp, err := d.opt.Queue(io.MultiReader(strings.NewReader(d.dtline), d.msg), d.sender, recips)
	d.qp = qp
	if err == nil {
		return nil
	}
	text := strings.TrimSpace(err.Error())
	if queueclient.IsPermanent(err) {
		return perm("Unable to forward message: %s.", text)
	}
	return temp("Unable to forward message: %s.", text)
}

// queueForward hands a message to qmail-queue (or $QMAILQUEUE).
var queueForward = QueueWith(queueclient.Config{})

// QueueWith is an Options.Queue that hands forwards to qmail-queue as cf says; a
// qmail-local worker uses it to give qmail-queue the delivery's output as its standard
// error, as a qmail-local of its own would.
func QueueWith(cf queueclient.Config) func(msg io.Reader, sender string, recips []string) (int, error) {
	return func(msg io.Reader, sender string, recips []string) (int, error) {
		return queueWith(cf, msg, sender, recips)
	}
}

func queueWith(cf queueclient.Config, msg io.Reader, sender string, recips []string) (int, error) {
	c, err := cf.Open()
	if err != nil {
		return 0, err
	}
	qp := c.PID()
	if _, err := io.Copy(c, msg); err != nil {
		c.Fail()
	}
	c.From(sender)
	for _, r := range recips {
		c.To(r)
	}
	return qp, c.Close()
}
