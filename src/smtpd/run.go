package smtpd

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/notqmail/notqmail/src/certs"
	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/spp"
)

// Env is a session's environment: the process's, overlaid with what tcpserver or the
// built-in listener set for this client (TCPREMOTEIP, RELAYCLIENT, ...).
type Env struct {
	Over map[string]string
}

// Lookup finds a variable, the overlay first.
func (e Env) Lookup(k string) (string, bool) {
	if v, ok := e.Over[k]; ok {
		return v, true
	}
	return os.LookupEnv(k)
}

// List is the environment as "NAME=value" strings, for the programs the session runs.
func (e Env) List() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, over := e.Over[k]; !over {
			out = append(out, kv)
		}
	}
	for k, v := range e.Over {
		out = append(out, k+"="+v)
	}
	return out
}

// RunOptions describe one session of qmail-smtpd.
type RunOptions struct {
	Control control.Dir
	Env     Env
	ID      string    // for the log lines
	Log     io.Writer // the session's log lines
	// CheckPassword, when set, is a checkpassword command (program and arguments)
	// that turns on SMTP AUTH.
	CheckPassword []string
	// Certs are the TLS certificates; nil loads them from the control directory
	// for this session (as under tcpserver, one process per session).
	Certs *certs.Store
	// ImplicitTLS starts with a TLS handshake (port 465); Submission requires AUTH
	// before MAIL. $SMTPS and $SUBMISSION turn them on too.
	ImplicitTLS, Submission bool
	// AuthLimit counts failed AUTHs per client across sessions; nil: per session.
	AuthLimit *AuthLimiter
	// TLSConfig, when set, is the TLS configuration of the session, shared with the
	// listener's other sessions (so that their session tickets resume each other's
	// TLS sessions); nil: one made from Certs for this session.
	TLSConfig *tls.Config
	// Configs, when set, shares the control files' reading among the sessions of a
	// listener (see ConfigCache); nil reads them for this session, from Control.
	Configs *ConfigCache
	// Home is the qmail home: qmail-queue runs there, and relative plugin paths
	// start there. "" finds it for this session (home.Dir); the listener finds it
	// once for all its sessions.
	Home string
}

// Run serves one client with the configuration read now from the control files and
// the environment: the whole of qmail-smtpd once its connection is set up.
func Run(conn io.ReadWriter, opt RunOptions) {
	ctl, env, id, log := opt.Control, opt.Env, opt.ID, opt.Log
	var cfg *Config
	var closeCfg func()
	var err error
	if opt.Configs != nil {
		cfg, closeCfg, err = opt.Configs.Load(env.Lookup)
	} else {
		cfg, closeCfg, err = Load(ctl, env.Lookup)
	}
	if err != nil {
		if log != nil {
			io.WriteString(log, "qmail-smtpd "+id+": unable to read controls: "+sanitize(err.Error())+"\n")
		}
		io.WriteString(conn, replyControls.render(false))
		return
	}
	defer closeCfg()
	qhome := opt.Home
	if qhome == "" {
		qhome = home.Dir()
	}
	list := env.List()
	cfg.Queue = queueProgram(list, qhome)
	cfg.Log = log
	cfg.ID = id
	if len(opt.CheckPassword) > 0 {
		cfg.Auth = CheckPassword(opt.CheckPassword, list, cfg.Timeout)
	}
	cfg.ImplicitTLS = cfg.ImplicitTLS || opt.ImplicitTLS
	cfg.Submission = cfg.Submission || opt.Submission
	cfg.AuthLimit = opt.AuthLimit
	store := opt.Certs
	// A pipe (sendmail -bs) is local: no TLS, and no complaint to the user that
	// the certificate is unreadable.
	if store == nil && isNetwork(conn) {
		var st *certs.Store
		var err error
		if opt.Configs != nil {
			st, err = opt.Configs.certs(log)
		} else {
			st, err = certs.OpenDefault(ctl)
		}
		switch {
		case err == nil:
			if opt.Configs == nil {
				st.Log = log
			}
			store = st
		case errors.Is(err, certs.ErrNoCertificate):
		default:
			// A broken certificate must not stop mail on port 25: the session goes
			// on without STARTTLS, and the log says why.
			if log != nil {
				io.WriteString(log, "qmail-smtpd "+id+": TLS disabled: "+sanitize(err.Error())+"\n")
			}
		}
	}
	switch {
	case opt.TLSConfig != nil:
		cfg.TLS = opt.TLSConfig
	case store != nil:
		cfg.TLS = store.Config()
	}
	if err := loadPlugins(cfg, ctl, opt.Configs, qhome, env, list, log); err != nil {
		if log != nil {
			io.WriteString(log, "qmail-smtpd "+id+": unable to read plugins: "+sanitize(err.Error())+"\n")
		}
		io.WriteString(conn, replyControls.render(false))
		return
	}
	Serve(conn, cfg)
}

// loadPlugins sets cfg.Plugins from control/smtpplugins ($SPPCONFFILE instead when
// set, relative to the qmail home; $NOSPP turns plugins off), as qmail-spp does.
func loadPlugins(cfg *Config, ctl control.Dir, cc *ConfigCache, qhome string, env Env, list []string, log io.Writer) error {
	if _, off := env.Lookup("NOSPP"); off {
		return nil
	}
	path := ctl.File("smtpplugins")
	if p, ok := env.Lookup("SPPCONFFILE"); ok && p != "" {
		path = p
		if !filepath.IsAbs(p) {
			path = filepath.Join(qhome, p)
		}
	}
	var r *spp.Runner
	var err error
	if cc != nil {
		r, err = cc.plugins(path)
	} else {
		r, err = spp.Load(path)
	}
	if err != nil || r == nil {
		return err
	}
	cp := *r // shared with other sessions: a copy to set
	r = &cp
	r.Dir = qhome
	r.Timeout = cfg.Timeout
	r.Stderr = log
	cfg.Plugins = func(st spp.Stage, set map[string]string, unset map[string]bool) spp.Verdict {
		return r.Run(st, list, set, unset)
	}
	return nil
}

// isNetwork reports whether conn is a network connection: the listener's, or
// tcpserver's sockets.
func isNetwork(conn io.ReadWriter) bool {
	switch conn.(type) {
	case net.Conn, stdioConn:
		return true
	}
	return false
}
