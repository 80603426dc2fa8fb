package smtpd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/notqmail/notqmail/src/certs"
	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/queueclient"
	"github.com/notqmail/notqmail/src/rcpthosts"
	"github.com/notqmail/notqmail/src/spp"
)

// DefaultTimeout is timeoutsmtpd's default.
const DefaultTimeout = 1200 * time.Second

// Load builds a session's Config from the control files and the client's
// environment (lookup, normally os.LookupEnv: tcpserver's TCPREMOTEIP, TCPREMOTEHOST, TCPREMOTEINFO,
// TCPLOCALIP, TCPLOCALHOST, and RELAYCLIENT, DATABYTES). The returned close
// releases morercpthosts.cdb. Queue, CheckRcpt, Plugins and Log are left to the
// caller, except CheckRcpt, set from control/validrcptdomains. Any unreadable control file is an error: qmail-smtpd then answers
// "421 unable to read controls".
func Load(ctl control.Dir, lookup func(string) (string, bool)) (*Config, func(), error) {
	c, err := readControls(ctl)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := c.config(lookup)
	if err != nil {
		c.rcpt.Close()
		return nil, nil, err
	}
	return cfg, func() { c.rcpt.Close() }, nil
}

// controls is what Load reads from the control files, apart from the client's
// environment: in listener mode, one copy serves the sessions of a ConfigCache.
// Nothing in it is changed after readControls.
type controls struct {
	greeting, localIPHost  string
	badMailFrom, badRcptTo []string
	dataBytes              int64
	timeout                time.Duration
	authWithoutTLS         bool
	validator              *Validator         // nil: no recipient validation
	rcpt                   *rcpthosts.Matcher // its cdb reads with ReadAt: safe to share

	// ConfigCache's reference count: rcpt is closed once the copy is replaced and
	// no session uses it any more.
	refs  int
	stale bool
}

func readControls(ctl control.Dir) (*controls, error) {
	c := &controls{}
	var err error
	if c.greeting, err = ctl.LineOrMe("smtpgreeting", ""); err != nil {
		return nil, err
	}
	if c.greeting == "" {
		return nil, errors.New("control/me and control/smtpgreeting are both missing")
	}
	if c.localIPHost, err = ctl.LineOrMe("localiphost", ""); err != nil {
		return nil, err
	}
	if c.badMailFrom, err = ctl.Strings("badmailfrom"); err != nil {
		return nil, err
	}
	if c.badRcptTo, err = ctl.Strings("badrcptto"); err != nil {
		return nil, err
	}
	db, err := ctl.Int("databytes", 0)
	if err != nil {
		return nil, err
	}
	c.dataBytes = int64(db)
	t, err := ctl.Int("timeoutsmtpd", int(DefaultTimeout/time.Second))
	if err != nil {
		return nil, err
	}
	c.timeout = time.Duration(t) * time.Second
	aw, err := ctl.Int("authwithouttls", 0)
	if err != nil {
		return nil, err
	}
	c.authWithoutTLS = aw != 0
	if c.validator, err = LoadValidator(ctl); err != nil {
		return nil, err
	}
	if c.rcpt, err = rcpthosts.Open(ctl.Path); err != nil {
		return nil, err
	}
	return c, nil
}

// config is a session's Config: the controls with the client's environment.
func (c *controls) config(lookup func(string) (string, bool)) (*Config, error) {
	getenv := func(k string) string { v, _ := lookup(k); return v }
	cfg := &Config{
		Greeting:       c.greeting,
		LocalIPHost:    c.localIPHost,
		BadMailFrom:    c.badMailFrom,
		BadRcptTo:      c.badRcptTo,
		DataBytes:      c.dataBytes,
		Timeout:        c.timeout,
		AuthWithoutTLS: c.authWithoutTLS,
	}
	if v := getenv("DATABYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, errors.New("DATABYTES is not a non-negative number: " + strconv.Quote(v))
		}
		cfg.DataBytes = n
	}
	// The modes may come from the environment, so one tcprules file or tcpserver
	// line per port can choose them.
	cfg.ImplicitTLS = getenv("SMTPS") != ""
	cfg.Submission = getenv("SUBMISSION") != ""
	if c.validator != nil {
		v := *c.validator // the log is the session's
		v.Log = func(format string, args ...any) {
			if cfg.Log != nil {
				fmt.Fprintf(cfg.Log, "qmail-smtpd: "+format+"\n", args...)
			}
		}
		cfg.CheckRcpt = v.Check
	}
	cfg.RcptHosts = c.rcpt.Check
	cfg.LocalIP = LocalAddr
	cfg.RemoteIP = getenv("TCPREMOTEIP")
	cfg.RemoteHost = getenv("TCPREMOTEHOST")
	cfg.RemoteInfo = getenv("TCPREMOTEINFO")
	cfg.LocalIPStr = getenv("TCPLOCALIP")
	cfg.LocalHost = getenv("TCPLOCALHOST")
	// RELAYCLIENT set but empty allows relaying without changing recipients.
	if v, ok := lookup("RELAYCLIENT"); ok {
		cfg.RelayClient, cfg.RelaySet = v, true
	}
	return cfg, nil
}

// DefaultConfigAge is how long the built-in listener reuses the control files it
// read: an edit takes effect for sessions that start at most this long after it.
const DefaultConfigAge = 2 * time.Second

// ConfigCache is Load for the sessions of one long-running listener: the control
// files are read once and the result serves every session that starts within MaxAge
// of that reading, where a qmail-smtpd under tcpserver reads them for each session.
// A session keeps the copy it started with to its end. Errors are not cached: the
// next session reads again. It is safe for concurrent use.
type ConfigCache struct {
	Control control.Dir
	MaxAge  time.Duration // 0: DefaultConfigAge

	mu     sync.Mutex
	cur    *controls
	loaded time.Time
	onRead func() // tests: called for each reading of the control files

	// The plugins files and the default certificate, kept for MaxAge like the
	// control files: a session would otherwise open or stat them each time.
	spp       map[string]heldPlugins
	cert      *certs.Store // nil: there was no certificate
	certAt    time.Time    // when cert was read; zero: never
	onSPPRead func(path string)
}

type heldPlugins struct {
	r  *spp.Runner // nil: no such file
	at time.Time
}

// maxHeldPlugins bounds the plugins files kept ($SPPCONFFILE can name one per
// access rule); past it the expired readings are dropped, or else all of them.
const maxHeldPlugins = 16

func (cc *ConfigCache) maxAge() time.Duration {
	if cc.MaxAge <= 0 {
		return DefaultConfigAge
	}
	return cc.MaxAge
}

// plugins is spp.Load(path), read at most once per MaxAge. The Runner is shared:
// the caller copies it before setting its fields. A failed reading is not kept.
func (cc *ConfigCache) plugins(path string) (*spp.Runner, error) {
	cc.mu.Lock()
	if h, ok := cc.spp[path]; ok && time.Since(h.at) < cc.maxAge() {
		cc.mu.Unlock()
		return h.r, nil
	}
	cc.mu.Unlock()
	// Read without the lock every session takes: $SPPCONFFILE comes from the access
	// rules and may name a file that blocks (a FIFO), which must hold up only the
	// sessions that use it.
	if cc.onSPPRead != nil {
		cc.onSPPRead(path)
	}
	r, err := spp.Load(path)
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if err != nil {
		delete(cc.spp, path)
		return nil, err
	}
	if cc.spp == nil {
		cc.spp = map[string]heldPlugins{}
	}
	if len(cc.spp) >= maxHeldPlugins {
		for p, h := range cc.spp {
			if time.Since(h.at) >= cc.maxAge() {
				delete(cc.spp, p)
			}
		}
		if len(cc.spp) >= maxHeldPlugins {
			clear(cc.spp)
		}
	}
	cc.spp[path] = heldPlugins{r, time.Now()}
	return r, nil
}

// certs is certs.OpenDefault for the sessions of a listener that started without
// a certificate, read at most once per MaxAge: STARTTLS is offered within MaxAge of
// servercert.pem appearing. A reading that fails otherwise is not kept.
func (cc *ConfigCache) certs(log io.Writer) (*certs.Store, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if !cc.certAt.IsZero() && time.Since(cc.certAt) < cc.maxAge() {
		if cc.cert == nil {
			return nil, certs.ErrNoCertificate
		}
		return cc.cert, nil
	}
	st, err := certs.OpenDefault(cc.Control)
	switch {
	case err == nil:
		st.Log = log
		cc.cert, cc.certAt = st, time.Now()
	case errors.Is(err, certs.ErrNoCertificate):
		cc.cert, cc.certAt = nil, time.Now()
	default:
		cc.cert, cc.certAt = nil, time.Time{}
	}
	return st, err
}

// Load is the package's Load, with the control files read at most once per MaxAge.
func (cc *ConfigCache) Load(lookup func(string) (string, bool)) (*Config, func(), error) {
	age := cc.maxAge()
	cc.mu.Lock()
	c := cc.cur
	if c == nil || time.Since(cc.loaded) >= age {
		if cc.onRead != nil {
			cc.onRead()
		}
		// Read under the lock: sessions starting meanwhile wait for this reading
		// rather than each doing their own.
		fresh, err := readControls(cc.Control)
		if err != nil {
			cc.mu.Unlock()
			return nil, nil, err
		}
		if c != nil {
			c.stale = true
			if c.refs == 0 {
				c.rcpt.Close()
			}
		}
		c, cc.cur, cc.loaded = fresh, fresh, time.Now()
	}
	c.refs++
	cc.mu.Unlock()
	release := func() {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		c.refs--
		if c.stale && c.refs == 0 {
			c.rcpt.Close()
		}
	}
	cfg, err := c.config(lookup)
	if err != nil {
		release()
		return nil, nil, err
	}
	var once sync.Once
	return cfg, func() { once.Do(release) }, nil
}

var (
	localAddrsOnce sync.Once
	localAddrs     map[netip.Addr]bool
)

// LocalAddr reports whether a is one of this host's interface addresses (qmail's
// ipme), for localiphost.
func LocalAddr(a netip.Addr) bool {
	localAddrsOnce.Do(func() {
		localAddrs = map[netip.Addr]bool{}
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return
		}
		for _, ad := range addrs {
			if n, ok := ad.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					localAddrs[ip.Unmap()] = true
				}
			}
		}
	})
	return localAddrs[a]
}

// QueueProgram returns a Config.Queue that runs qmail-queue with the given
// environment (nil: the process's): $QMAILQUEUE from that environment, else
// bin/qmail-queue.
func QueueProgram(env []string) func() (Message, error) {
	return queueProgram(env, "")
}

// queueProgram is QueueProgram with qmail-queue run in the qmail home qhome (""
// finds it for each message).
func queueProgram(env []string, qhome string) func() (Message, error) {
	prog := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "QMAILQUEUE="); ok {
			prog = v
		}
	}
	return func() (Message, error) {
		c, err := queueclient.Config{Env: env, Program: prog, Home: qhome}.Open()
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}
