package qmtp

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/ids"
	"github.com/notqmail/notqmail/src/listener"
)

// stdio is the connection under tcpserver or inetd: the client on fds 0 and 1.
type stdio struct{ in, out *os.File }

func (s stdio) Read(p []byte) (int, error)  { return s.in.Read(p) }
func (s stdio) Write(p []byte) (int, error) { return s.out.Write(p) }

// Deadlines work when the descriptors are sockets; otherwise they are ignored.
func (s stdio) SetReadDeadline(t time.Time) error  { return s.in.SetReadDeadline(t) }
func (s stdio) SetWriteDeadline(t time.Time) error { return s.out.SetWriteDeadline(t) }

// ServerMain runs qmail-qmtpd or qmail-qmqpd: one session on stdin/stdout (under
// tcpserver), or with -l (or socket activation) a listener of its own, which becomes
// qmaild:nofiles once bound, as under tcpserver -u qmaild.
func ServerMain(prog string, serve func(Conn, ServerConfig), args []string) int {
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	listen := fs.String("l", "", "")
	maxConns := fs.Int("c", 0, "")
	maxPerIP := fs.Int("i", 0, "")
	rulesFile := fs.String("x", "", "")
	localHost := fs.String("H", "", "")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "usage: %s [-l host:port] [-c n] [-i n] [-x rules] [-H name]\n", prog)
		return 100
	}
	// qmail's servers work in the qmail home, where qmail-queue is found.
	if err := os.Chdir(home.Dir()); err != nil {
		fmt.Fprintf(os.Stderr, "%s: unable to chdir to home: %v\n", prog, err)
		return 111
	}
	var lns []net.Listener
	if *listen != "" {
		ln, err := listener.Listen(*listen)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
			return 111
		}
		lns = []net.Listener{ln}
	} else {
		var err error
		if lns, err = listener.Activated(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
			return 111
		}
	}
	if lns == nil {
		serve(stdio{os.Stdin, os.Stdout}, ServerConfig{Control: control.Default(), Env: os.LookupEnv, Log: os.Stderr})
		return 0
	}
	if err := listenAll(prog, lns, serve, listener.Config{MaxConns: *maxConns, MaxPerIP: *maxPerIP, LocalHost: *localHost, Log: os.Stderr}, *rulesFile); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
		return 111
	}
	return 0
}

func listenAll(prog string, lns []net.Listener, serve func(Conn, ServerConfig), cfg listener.Config, rulesFile string) error {
	if !home.InSandbox() {
		u, err := ids.User(ids.Qmaild)
		if err != nil {
			return err
		}
		gid, err := ids.Group(ids.GroupNofiles)
		if err != nil {
			return err
		}
		if err := listener.DropPrivileges(u.UID, gid); err != nil {
			return err
		}
	}
	if rulesFile != "" {
		r, err := listener.LoadRules(rulesFile)
		if err != nil {
			return err
		}
		cfg.Rules = r
	}
	cfg.Handle = func(c net.Conn, vars []listener.EnvVar, id string) {
		env := map[string]string{}
		for _, v := range vars {
			env[v.Name] = v.Value
		}
		serve(c, ServerConfig{Control: control.Default(), Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, Log: cfg.Log})
	}
	// SIGTERM stops accepting; sessions under way finish, so no client loses the
	// answer for a message already queued.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	go func() {
		<-sig
		for _, ln := range lns {
			ln.Close()
		}
	}()
	errs := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errs <- listener.Serve(ln, cfg) }()
	}
	var first error
	for range lns {
		if err := <-errs; err != nil && first == nil {
			first = err
			for _, ln := range lns {
				ln.Close()
			}
		}
	}
	return first
}
