// Package start is qmail-start: it creates the pipes between qmail-send and its helpers
// and starts qmail-send, qmail-lspawn, qmail-rspawn, qmail-clean and the logger, each
// under its own uid, wired as qmail wires them, and beside them qmail-queued (as
// qmailq, its log on the logger's pipe):
//
//	qmail-send  fd 0 -> logger's stdin (or qmail-start's stdout without a logger)
//	            fd 1 -> qmail-lspawn's stdin   fd 2 <- qmail-lspawn's stdout
//	            fd 3 -> qmail-rspawn's stdin   fd 4 <- qmail-rspawn's stdout
//	            fd 5 -> qmail-clean's stdin    fd 6 <- qmail-clean's stdout
//
// qmail's qmail-start replaces itself with qmail-send. A Go program cannot safely
// rearrange its own low descriptors before exec, so this one stays as qmail-send's
// parent instead: it passes SIGTERM, SIGHUP and SIGALRM on to qmail-send and exits
// when qmail-send exits, leaving the helpers to finish and exit on their own as they
// do under qmail. qmail-queued reads a pipe from qmail-start on its fd 0 and stops
// listening when qmail-start has gone; it finishes the messages it has begun.
package start

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/ids"
)

// DefaultDelivery is qmail-lspawn's default delivery when qmail-start gets none.
const DefaultDelivery = "./Mailbox"

// Options are qmail-start's arguments.
type Options struct {
	DefaultDelivery string   // passed to qmail-lspawn
	Logger          []string // logger command and arguments; empty: log to stdout
}

// ParseArgs reads "qmail-start [defaultdelivery [logger args...]]". Without a
// defaultdelivery argument, the whole of control/defaultdelivery applies when it exists
// (as qmail's rc passes "$(cat control/defaultdelivery)": several .qmail lines and
// comments), else ./Mailbox as in qmail.
func ParseArgs(args []string, ctl control.Dir) (Options, error) {
	if len(args) > 0 {
		return Options{DefaultDelivery: args[0], Logger: args[1:]}, nil
	}
	dd, ok, err := ctl.Text("defaultdelivery")
	if err != nil {
		return Options{}, err
	}
	if !ok || strings.TrimSpace(dd) == "" {
		dd = DefaultDelivery
	}
	return Options{DefaultDelivery: dd}, nil
}

// creds are the uids and gids qmail-start hands out.
type creds struct {
	sandbox                bool
	uidL, uidQ, uidR, uidS int
	gidN, gidQ             int
	groupsR                []uint32
}

func lookupCreds() (creds, error) {
	var c creds
	if home.InSandbox() {
		c.sandbox = true
		return c, nil
	}
	for _, x := range []struct {
		name string
		dst  *int
	}{{ids.Qmaill, &c.uidL}, {ids.Qmailq, &c.uidQ}, {ids.Qmailr, &c.uidR}, {ids.Qmails, &c.uidS}} {
		a, err := ids.User(x.name)
		if err != nil {
			return c, err
		}
		*x.dst = a.UID
	}
	var err error
	if c.gidN, err = ids.Group(ids.GroupNofiles); err != nil {
		return c, err
	}
	if c.gidQ, err = ids.Group(ids.GroupQmail); err != nil {
		return c, err
	}
	// qmail-rspawn gets every group qmailr belongs to (notqmail 1.09), with qmail first.
	c.groupsR = []uint32{uint32(c.gidQ)}
	if u, err := user.Lookup(ids.Qmailr); err == nil {
		if gs, err := u.GroupIds(); err == nil {
			for _, g := range gs {
				if n, err := strconv.Atoi(g); err == nil && n != c.gidQ {
					c.groupsR = append(c.groupsR, uint32(n))
				}
			}
		}
	}
	return c, nil
}

func (c creds) as(uid, gid int, groups []uint32) *syscall.SysProcAttr {
	if c.sandbox {
		return nil
	}
	if groups == nil {
		groups = []uint32{uint32(gid)}
	}
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}}
}

// Program returns how to run one of the daemons: QMAILHOME/bin/<name> when it exists,
// else <name> from PATH (as qmail's execvp does), else this very binary under that
// name, since the multi-call binary serves them all.
func Program(name string) (path string, err error) {
	p := home.Path("bin", name)
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return os.Executable()
}

func command(name string, args ...string) (*exec.Cmd, error) {
	p, err := Program(name)
	if err != nil {
		return nil, fmt.Errorf("unable to find %s: %w", name, err)
	}
	cmd := exec.Command(p, args...)
	cmd.Args[0] = name
	return cmd, nil
}

// Run starts everything and waits; it returns qmail-start's exit status.
func Run(o Options) int {
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "qmail-start:", err)
		return 111
	}
	return 0
}

type pipe struct{ r, w *os.File }

func run(o Options) error {
	if err := os.Chdir("/"); err != nil {
		return err
	}
	syscall.Umask(077)
	c, err := lookupCreds()
	if err != nil {
		return err
	}
	if !c.sandbox && os.Geteuid() == 0 {
		if err := syscall.Setgroups([]int{c.gidQ}); err != nil {
			return err
		}
		if err := syscall.Setgid(c.gidQ); err != nil {
			return err
		}
	}

	var started []*exec.Cmd
	var toClose []*os.File
	fail := func(err error) error {
		for _, f := range toClose {
			f.Close()
		}
		for _, cmd := range started {
			cmd.Process.Kill()
			cmd.Wait()
		}
		return err
	}
	newPipe := func() (pipe, error) {
		r, w, err := os.Pipe()
		if err == nil {
			toClose = append(toClose, r, w)
		}
		return pipe{r, w}, err
	}
	startCmd := func(cmd *exec.Cmd) error {
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("unable to start %s: %w", cmd.Args[0], err)
		}
		started = append(started, cmd)
		return nil
	}

	logOut := os.Stdout
	if len(o.Logger) > 0 {
		lp, err := newPipe()
		if err != nil {
			return fail(err)
		}
		path, err := exec.LookPath(o.Logger[0])
		if err != nil {
			return fail(fmt.Errorf("unable to find logger %s: %w", o.Logger[0], err))
		}
		cmd := exec.Command(path, o.Logger[1:]...)
		cmd.Args[0] = o.Logger[0]
		cmd.Stdin = lp.r
		cmd.Stdout = os.Stdout
		cmd.SysProcAttr = c.as(c.uidL, c.gidN, nil)
		if err := startCmd(cmd); err != nil {
			return fail(err)
		}
		logOut = lp.w
	}

	// qmail-queued is an optimization: clients run bin/qmail-queue without it, so a
	// failure to start it is worth a warning, never a stopped MTA.
	queuedStop, err := startQueued(c, logOut)
	if err != nil {
		fmt.Fprintln(os.Stderr, "qmail-start: warning:", err)
	} else {
		defer queuedStop.Close() // also closed by the exit: qmail-queued's end of file
	}

	var p [7]pipe
	for i := 1; i <= 6; i++ {
		if p[i], err = newPipe(); err != nil {
			return fail(err)
		}
	}
	type child struct {
		name string
		args []string
		in   *os.File
		out  *os.File
		attr *syscall.SysProcAttr
	}
	children := []child{
		// qmail-lspawn stays root: it must become each recipient.
		{"qmail-lspawn", []string{o.DefaultDelivery}, p[1].r, p[2].w, nil},
		{"qmail-rspawn", nil, p[3].r, p[4].w, c.as(c.uidR, c.gidQ, c.groupsR)},
		{"qmail-clean", nil, p[5].r, p[6].w, c.as(c.uidQ, c.gidQ, nil)},
	}
	for _, ch := range children {
		cmd, err := command(ch.name, ch.args...)
		if err != nil {
			return fail(err)
		}
		cmd.Stdin, cmd.Stdout = ch.in, ch.out
		if ch.name == "qmail-clean" {
			// As in qmail, where the helpers inherit qmail-start's descriptor 2. It also
			// lets whoever reads qmail-start's output see qmail-clean finish the spares
			// it makes after qmail-send has gone.
			cmd.Stderr = os.Stderr
		}
		cmd.SysProcAttr = ch.attr
		if err := startCmd(cmd); err != nil {
			return fail(err)
		}
	}
	send, err := command("qmail-send")
	if err != nil {
		return fail(err)
	}
	send.Stdin = logOut
	send.Stdout = p[1].w
	send.Stderr = p[2].r
	send.ExtraFiles = []*os.File{p[3].w, p[4].r, p[5].w, p[6].r}
	send.SysProcAttr = c.as(c.uidS, c.gidQ, nil)

	// Catch the signals before qmail-send exists, so none is lost in between.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGALRM)
	if err := startCmd(send); err != nil {
		return fail(err)
	}
	// Only the children may hold the pipes now, so each sees end of file when its
	// peer goes away.
	for _, f := range toClose {
		f.Close()
	}

	sendDone := make(chan error, 1)
	go func() { sendDone <- send.Wait() }()
	var sendErr error
	for waiting := true; waiting; {
		select {
		case s := <-sigs:
			send.Process.Signal(s)
		case sendErr = <-sendDone:
			waiting = false
		}
	}
	signal.Stop(sigs)
	// The helpers see end of file now and exit once their deliveries are done; like
	// qmail's, they are not waited for, so a supervisor can restart qmail-start at once
	// even while a slow delivery finishes.
	if sendErr != nil {
		var ee *exec.ExitError
		if errors.As(sendErr, &ee) {
			return fmt.Errorf("qmail-send: %s", ee.ProcessState)
		}
		return sendErr
	}
	return nil
}

// RunDir is qmail-queued's socket directory under QMAILHOME: owned by qmailq, mode
// 0755, so that every user may connect and only qmailq may put a socket there.
const RunDir = "run"

// startQueued makes QMAILHOME/run and starts qmail-queued as qmailq with its log on
// logOut. It returns the write end of qmail-queued's fd 0, which qmail-start keeps
// open while it lives.
func startQueued(c creds, logOut *os.File) (*os.File, error) {
	dir := home.Path(RunDir)
	if err := os.Mkdir(dir, 0755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("unable to make %s: %w", dir, err)
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	if !c.sandbox && os.Geteuid() == 0 {
		if err := os.Lchown(dir, c.uidQ, c.gidQ); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(dir, 0755); err != nil {
		return nil, err
	}
	cmd, err := command("qmail-queued")
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r, logOut, logOut
	cmd.SysProcAttr = c.as(c.uidQ, c.gidQ, nil)
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("unable to start qmail-queued: %w", err)
	}
	// Reap it when it exits, so it never lingers as a zombie under qmail-start.
	go cmd.Wait()
	return w, nil
}
