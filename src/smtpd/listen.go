package smtpd

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/notqmail/notqmail/src/certs"
	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/ids"
	"github.com/notqmail/notqmail/src/listener"
)

// Listeners returns the sockets to serve: addr when given, else those of socket
// activation; nil means neither, so the session is on stdin/stdout.
func Listeners(addr string) ([]net.Listener, error) {
	if addr != "" {
		ln, err := listener.Listen(addr)
		if err != nil {
			return nil, err
		}
		return []net.Listener{ln}, nil
	}
	return listener.Activated()
}

// ListenOptions configure the built-in listener.
type ListenOptions struct {
	MaxConns, MaxPerIP int
	RulesFile          string // tcprules text, or a .cdb built by tcprules; "" allows all
	LocalHost          string
	Log                io.Writer
	CheckPassword      []string // turns on SMTP AUTH; see RunOptions
	ImplicitTLS        bool     // TLS from the first byte (port 465)
	Submission         bool     // AUTH required before MAIL (ports 587 and 465)
}

var replyBusy = Reply{421, "4.7.0", "too many connections from your address, try again later"}

// Listen serves SMTP on the listeners until they fail. Once the sockets are bound it
// becomes qmaild:nofiles, as qmail-smtpd runs under tcpserver (in sandbox mode the
// process already is the sandbox owner). The control files are read as a new
// qmail-smtpd process would read them, but at most once every DefaultConfigAge
// (ConfigCache): the sessions starting meanwhile share that reading.
//
// The TLS certificates are loaded before that, once: a broken certificate file (or
// a missing one with ImplicitTLS) is an error here, at start-up, rather than a
// surprise for the first client. They are reloaded when the files change, which
// needs them readable by qmaild.
func Listen(lns []net.Listener, opt ListenOptions) error {
	store, err := certs.Open(control.Default())
	switch {
	case err == nil:
		store.Log = opt.Log
		if opt.Log != nil {
			for _, w := range store.Expiring(time.Now()) {
				io.WriteString(opt.Log, "qmail-smtpd: warning: "+w+"\n")
			}
		}
	case errors.Is(err, certs.ErrNoCertificate) && !opt.ImplicitTLS:
		if opt.Log != nil {
			io.WriteString(opt.Log, "qmail-smtpd: "+err.Error()+": STARTTLS not offered until it exists\n")
		}
	default:
		return err
	}
	limiter := NewAuthLimiter()
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
	var rules listener.Rules
	if opt.RulesFile != "" {
		r, err := listener.LoadRules(opt.RulesFile)
		if err != nil {
			return err
		}
		rules = r
	}
	// The home, and so the control directory, are found once: each costs a few
	// system calls (the ids, for home.Dir's setuid check) that would otherwise be
	// spent on every connection.
	qhome := home.Dir()
	ctl := control.Default()
	configs := &ConfigCache{Control: ctl}
	// One TLS configuration for all sessions: its session ticket keys are then the
	// same for all, so a returning client resumes instead of a full handshake.
	var tlsConf *tls.Config
	if store != nil {
		tlsConf = store.Config()
	}
	cfg := listener.Config{
		MaxConns:  opt.MaxConns,
		MaxPerIP:  opt.MaxPerIP,
		Rules:     rules,
		LocalHost: opt.LocalHost,
		Log:       opt.Log,
		Refuse:    func(c net.Conn) { io.WriteString(c, replyBusy.render(false)) },
		Handle: func(c net.Conn, vars []listener.EnvVar, id string) {
			env := Env{Over: map[string]string{}}
			for _, v := range vars {
				env.Over[v.Name] = v.Value
			}
			Run(c, RunOptions{
				Control: ctl, Env: env, ID: id, Log: opt.Log, CheckPassword: opt.CheckPassword,
				Certs: store, ImplicitTLS: opt.ImplicitTLS, Submission: opt.Submission, AuthLimit: limiter,
				Configs: configs, TLSConfig: tlsConf, Home: qhome,
			})
		},
	}
	// SIGTERM or SIGINT stops accepting; sessions under way finish (each is bounded
	// by timeoutsmtpd), so no client is cut off between qmail-queue's success and
	// the 250 that tells it.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case s := <-sig:
			if opt.Log != nil {
				io.WriteString(opt.Log, "qmail-smtpd: "+s.String()+": no new connections; finishing sessions\n")
			}
			for _, ln := range lns {
				ln.Close()
			}
		case <-stop:
		}
	}()
	errs := make(chan error, len(lns))
	var wg sync.WaitGroup
	for _, ln := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- listener.Serve(ln, cfg)
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}
