// Package demo is `go run mage.go demo`: it builds the MTA for this host, creates a
// sandbox qmail home under build/demo, starts whatever of the MTA exists in the build
// on 127.0.0.1, and says how to send it a message and where the message lands.
//
// It never pretends: it asks the built binary which programs it serves (notqmail
// --list), starts only those, and names what is missing.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/notqmail/notqmail/packaging/release"
	"github.com/notqmail/notqmail/src/sandbox"
)

// DefaultPort is where the demo's SMTP listener goes unless NOTQMAIL_DEMO_PORT says
// otherwise.
const DefaultPort = 2525

// PortEnv overrides the port.
const PortEnv = "NOTQMAIL_DEMO_PORT"

// Options say where the demo lives.
type Options struct {
	Root string    // module root
	Dir  string    // the sandbox home; default Root/build/demo
	Bin  string    // where to build the binaries; default Root/build/host
	Port int       // SMTP port on 127.0.0.1; default $NOTQMAIL_DEMO_PORT or DefaultPort
	Out  io.Writer // default os.Stdout
}

func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		o.Dir = filepath.Join(o.Root, "build", "demo")
	}
	if o.Bin == "" {
		o.Bin = filepath.Join(o.Root, "build", "host")
	}
	if o.Port == 0 {
		o.Port = DefaultPort
		if s := os.Getenv(PortEnv); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 65535 {
				return o, fmt.Errorf("%s=%q: want a port number", PortEnv, s)
			}
			o.Port = n
		}
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	return o, nil
}

// Daemons are what qmail-start needs to deliver mail: itself and the programs it runs.
var Daemons = []string{"qmail-start", "qmail-send", "qmail-lspawn", "qmail-rspawn", "qmail-clean", "qmail-local"}

// Plan is what the demo can start with a given build.
type Plan struct {
	Delivery bool     // qmail-start and the daemons exist
	SMTP     bool     // qmail-smtpd exists
	Sendmail bool     // sendmail exists, to inject from the command line
	Missing  []string // programs the demo would use and the build lacks
}

// MakePlan decides what to start from the programs the built binary serves.
func MakePlan(programs []string) Plan {
	has := map[string]bool{}
	for _, p := range programs {
		has[p] = true
	}
	var p Plan
	p.Delivery = true
	for _, d := range Daemons {
		if !has[d] {
			p.Delivery = false
			p.Missing = append(p.Missing, d)
		}
	}
	p.SMTP = has["qmail-smtpd"]
	if !p.SMTP {
		p.Missing = append(p.Missing, "qmail-smtpd")
	}
	p.Sendmail = has["sendmail"]
	if !p.Sendmail {
		p.Missing = append(p.Missing, "sendmail")
	}
	return p
}

// Demo is a running demo.
type Demo struct {
	Home  *sandbox.Home
	Addr  string // the SMTP listener, when there is one
	Plan  Plan
	procs []*proc
}

type proc struct {
	name   string
	log    string
	wait   chan struct{}
	err    error
	signal func(os.Signal) error
}

// guard bounds how long the demo waits for its listener to come up or for a program
// to stop, so a broken build reports an error instead of hanging.
const guard = 60 * time.Second

// Start builds the binaries, creates a fresh sandbox home (removing the one a previous
// demo left) and starts what exists.
func Start(ctx context.Context, o Options) (*Demo, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("the demo runs on Linux (the MTA is built for it), not %s", runtime.GOOS)
	}
	cmds, err := release.Commands(o.Root)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "==> building %s for this host into %s\n", strings.Join(cmds, ", "), o.Bin)
	if err := release.BuildBinaries(ctx, o.Root, runtime.GOARCH, "demo", o.Bin, cmds, o.Out); err != nil {
		return nil, err
	}
	if _, err := os.Stat(o.Dir); err == nil {
		fmt.Fprintf(o.Out, "==> removing the previous demo home %s\n", o.Dir)
		if err := (&sandbox.Home{Dir: o.Dir}).Remove(); err != nil {
			return nil, err
		}
	}
	// Run as root, the sandbox belongs to nobody, who must be able to reach it.
	if err := os.MkdirAll(filepath.Dir(o.Dir), 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "==> creating the sandbox home %s\n", o.Dir)
	h, err := sandbox.Create(o.Dir, sandbox.Options{BinDir: o.Bin})
	if err != nil {
		if os.Geteuid() == 0 {
			return nil, fmt.Errorf("%w (as root the demo runs as %s; run it as an ordinary user, or from a checkout every user can reach)", err, sandbox.SandboxUser)
		}
		return nil, err
	}
	progs, err := release.Programs(ctx, filepath.Join(h.Bin, release.MultiCall))
	if err != nil {
		return nil, err
	}
	d := &Demo{Home: h, Plan: MakePlan(progs)}
	if err := os.MkdirAll(filepath.Join(h.Dir, "log"), 0o755); err != nil {
		return nil, err
	}
	if d.Plan.Delivery {
		// As boot/home does: qmail-start with the Maildir default, log on stdout.
		if err := d.start("qmail-start", []string{"./Maildir/"}); err != nil {
			d.Stop()
			return nil, err
		}
	}
	if d.Plan.SMTP {
		d.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(o.Port))
		if err := d.start("qmail-smtpd", []string{"-l", d.Addr}); err != nil {
			d.Stop()
			return nil, err
		}
		if err := d.waitListening(d.procs[len(d.procs)-1]); err != nil {
			d.Stop()
			return nil, err
		}
	}
	return d, nil
}

func (d *Demo) start(prog string, args []string) error {
	logPath := filepath.Join(d.Home.Dir, "log", prog)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := d.Home.Command(prog, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a Ctrl-C in the terminal reaches the demo, which then
	// stops the programs in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", prog, err)
	}
	p := &proc{name: prog, log: logPath, wait: make(chan struct{}), signal: cmd.Process.Signal}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.wait)
	}()
	d.procs = append(d.procs, p)
	return nil
}

func (d *Demo) waitListening(p *proc) error {
	deadline := time.Now().Add(guard)
	for {
		c, err := net.DialTimeout("tcp", d.Addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.wait:
			b, _ := os.ReadFile(p.log)
			return fmt.Errorf("qmail-smtpd exited (%v) before listening on %s (port in use? set %s):\n%s", p.err, d.Addr, PortEnv, b)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("qmail-smtpd is not listening on %s after %v", d.Addr, guard)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Exited returns a channel closed when any demo program exits on its own.
func (d *Demo) Exited() <-chan string {
	ch := make(chan string, len(d.procs))
	for _, p := range d.procs {
		go func() {
			<-p.wait
			ch <- p.name
		}()
	}
	return ch
}

// Stop stops the programs, newest first (the listener before qmail-send, so nothing
// is accepted that cannot be queued), with SIGTERM: qmail-send finishes its deliveries
// and exits; queued mail stays in the queue for the next start.
func (d *Demo) Stop() error {
	var errs []error
	for i := len(d.procs) - 1; i >= 0; i-- {
		p := d.procs[i]
		select {
		case <-p.wait:
			continue
		default:
		}
		p.signal(syscall.SIGTERM)
		select {
		case <-p.wait:
		case <-time.After(guard):
			p.signal(syscall.SIGKILL)
			<-p.wait
			errs = append(errs, fmt.Errorf("%s ignored SIGTERM and was killed", p.name))
		}
	}
	d.procs = nil
	return errors.Join(errs...)
}

// Describe writes what runs, how to send a message and where it lands.
func (d *Demo) Describe(w io.Writer, root string) {
	h := d.Home
	r := func(p string) string {
		if rel, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(rel, "..") {
			return rel
		}
		return p
	}
	user := "alice@" + h.Domain
	fmt.Fprintf(w, "\nnotqmail demo: a sandbox qmail home in %s (QMAILHOME), every program running as uid %d.\n\n", r(h.Dir), h.UID)
	if d.Plan.SMTP {
		fmt.Fprintf(w, "Running: qmail-smtpd on %s (log %s)\n", d.Addr, r(filepath.Join(h.Dir, "log", "qmail-smtpd")))
	}
	if d.Plan.Delivery {
		fmt.Fprintf(w, "Running: qmail-start ./Maildir/ -> qmail-send, qmail-lspawn, qmail-rspawn, qmail-clean (log %s)\n", r(filepath.Join(h.Dir, "log", "qmail-start")))
	}
	fmt.Fprintln(w)
	switch {
	case d.Plan.SMTP:
		fmt.Fprintf(w, "Send a message over SMTP (swaks is in Debian's swaks package):\n\n")
		fmt.Fprintf(w, "  swaks --server %s --from you@example.org --to %s\n\n", d.Addr, user)
	case d.Plan.Sendmail:
		fmt.Fprintf(w, "There is no SMTP listener yet (qmail-smtpd is not built).\n")
	}
	if d.Plan.Sendmail {
		fmt.Fprintf(w, "Inject a message from the command line (sendmail -> qmail-inject -> qmail-queue):\n\n")
		fmt.Fprintf(w, "  printf 'Subject: hello\\n\\nhi\\n' | QMAILHOME=%s %s %s\n\n", h.Dir, filepath.Join(h.Bin, "sendmail"), user)
	}
	if d.Plan.Delivery {
		fmt.Fprintf(w, "It lands in %s (one file per message).\n", r(filepath.Join(h.Maildir("alice"), "new")))
		fmt.Fprintf(w, "Mail for postmaster@%s lands in %s.\n", h.Domain, r(filepath.Join(h.Maildir("alias"), "new")))
		fmt.Fprintf(w, "Only %s is accepted (control/rcpthosts): the demo relays nothing.\n", h.Domain)
	} else {
		fmt.Fprintf(w, "Nothing delivers yet: accepted mail stays in %s.\n", r(filepath.Join(h.Dir, "queue")))
	}
	if len(d.Plan.Missing) > 0 {
		fmt.Fprintf(w, "\nNot in this build yet: %s.\n", strings.Join(d.Plan.Missing, ", "))
	}
}

// Run starts the demo, describes it, and runs until interrupted (Ctrl-C) or until ctx
// ends or a program exits, then stops everything.
func Run(ctx context.Context, o Options) error {
	o, err := o.withDefaults()
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()
	d, err := Start(ctx, o)
	if err != nil {
		return err
	}
	d.Describe(o.Out, o.Root)
	if len(d.procs) == 0 {
		fmt.Fprintln(o.Out, "\nNothing to run in this build; the sandbox home stays for you to look at.")
		return nil
	}
	fmt.Fprintln(o.Out, "\nPress Ctrl-C to stop.")
	var exitedErr error
	select {
	case <-ctx.Done():
	case name := <-d.Exited():
		exitedErr = fmt.Errorf("%s exited; see %s", name, filepath.Join(d.Home.Dir, "log", name))
	}
	fmt.Fprintln(o.Out, "\n==> stopping")
	return errors.Join(exitedErr, d.Stop())
}
