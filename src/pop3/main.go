package pop3

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/notqmail/notqmail/src/certs"
	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/listener"
)

// stdioFile makes a socket descriptor non-blocking before wrapping it, so that Go's
// poller serves it and deadlines work. Other descriptors (a terminal, a pipe shared
// with a shell) are left as they are, since the mode is shared with other processes.
func stdioFile(fd int, name string) *os.File {
	var st syscall.Stat_t
	if syscall.Fstat(fd, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFSOCK {
		syscall.SetNonblock(fd, true)
	}
	return os.NewFile(uintptr(fd), name)
}

type stdioDeadlines struct{ in, out *os.File }

func (s stdioDeadlines) SetReadDeadline(t time.Time) error  { return s.in.SetReadDeadline(t) }
func (s stdioDeadlines) SetWriteDeadline(t time.Time) error { return s.out.SetWriteDeadline(t) }

// Pop3dMain is qmail-pop3d maildir: the session on descriptors 0 and 1.
func Pop3dMain(args []string) int {
	if len(args) != 1 || args[0] == "" {
		fmt.Fprintln(os.Stderr, "usage: qmail-pop3d maildir")
		return 100
	}
	in, out := stdioFile(0, "stdin"), stdioFile(1, "stdout")
	return Pop3d(args[0], in, out, stdioDeadlines{in, out})
}

// PopupMain is qmail-popup [-l host:port] [-T] [-c n] [-i n] [-x rules] hostname
// subprogram [args...]. Under tcpserver it serves descriptors 0 and 1; with -l it
// listens itself (staying root, as checkpassword must be able to become the user).
func PopupMain(args []string) int {
	fs := flag.NewFlagSet("qmail-popup", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	listen := fs.String("l", "", "")
	implicit := fs.Bool("T", false, "")
	maxConns := fs.Int("c", 0, "")
	maxPerIP := fs.Int("i", 0, "")
	rulesFile := fs.String("x", "", "")
	if err := fs.Parse(args); err != nil || fs.NArg() < 2 || fs.Arg(0) == "" {
		fmt.Fprintln(os.Stderr, "usage: qmail-popup [-l host:port] [-T] [-c n] [-i n] [-x rules] hostname subprogram [args...]")
		return 100
	}
	cfg := PopupConfig{Hostname: fs.Arg(0), Child: fs.Args()[1:], Implicit: *implicit, Log: os.Stderr}
	store, err := certs.Open(control.Default())
	switch {
	case err == nil:
		store.Log = os.Stderr
		cfg.TLS = store.Config()
	case errors.Is(err, certs.ErrNoCertificate) && !*implicit:
		// No certificate: STLS is not offered.
	default:
		fmt.Fprintln(os.Stderr, "qmail-popup:", err)
		return 111
	}
	if *listen == "" {
		in, out := stdioFile(0, "stdin"), stdioFile(1, "stdout")
		raw, _ := net.FileConn(in) // nil unless descriptor 0 is a socket
		if raw != nil {
			defer raw.Close()
		}
		cfg.Env = os.Environ()
		_, cfg.Plain = os.LookupEnv(PlaintextEnv)
		return Popup(raw, in, out, cfg)
	}
	ln, err := listener.Listen(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "qmail-popup:", err)
		return 111
	}
	lc := listener.Config{MaxConns: *maxConns, MaxPerIP: *maxPerIP, Log: os.Stderr}
	if *rulesFile != "" {
		if lc.Rules, err = listener.LoadRules(*rulesFile); err != nil {
			fmt.Fprintln(os.Stderr, "qmail-popup:", err)
			return 111
		}
	}
	lc.Handle = func(c net.Conn, vars []listener.EnvVar, id string) {
		session := cfg
		session.Env = os.Environ()
		_, session.Plain = os.LookupEnv(PlaintextEnv)
		for _, v := range vars {
			session.Env = append(session.Env, v.Name+"="+v.Value)
			if v.Name == PlaintextEnv {
				session.Plain = true
			}
		}
		if session.TLS != nil {
			session.TLS = session.TLS.Clone()
		}
		Popup(c, nil, nil, session)
	}
	if err := listener.Serve(ln, lc); err != nil {
		fmt.Fprintln(os.Stderr, "qmail-popup:", err)
		return 111
	}
	return 0
}
