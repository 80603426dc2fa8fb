package smtpd

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/queueclient"
	"github.com/notqmail/notqmail/src/rcpthosts"
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
	getenv := func(k string) string { v, _ := lookup(k); return v }
	cfg := &Config{}
	var err error
	if cfg.Greeting, err = ctl.LineOrMe("smtpgreeting", ""); err != nil {
		return nil, nil, err
	}
	if cfg.Greeting == "" {
		return nil, nil, errors.New("control/me and control/smtpgreeting are both missing")
	}
	if cfg.LocalIPHost, err = ctl.LineOrMe("localiphost", ""); err != nil {
		return nil, nil, err
	}
	if cfg.BadMailFrom, err = ctl.Strings("badmailfrom"); err != nil {
		return nil, nil, err
	}
	if cfg.BadRcptTo, err = ctl.Strings("badrcptto"); err != nil {
		return nil, nil, err
	}
	db, err := ctl.Int("databytes", 0)
	if err != nil {
		return nil, nil, err
	}
	cfg.DataBytes = int64(db)
	if v := getenv("DATABYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, nil, errors.New("DATABYTES is not a non-negative number: " + strconv.Quote(v))
		}
		cfg.DataBytes = n
	}
	t, err := ctl.Int("timeoutsmtpd", int(DefaultTimeout/time.Second))
	if err != nil {
		return nil, nil, err
	}
	cfg.Timeout = time.Duration(t) * time.Second
	aw, err := ctl.Int("authwithouttls", 0)
	if err != nil {
		return nil, nil, err
	}
	cfg.AuthWithoutTLS = aw != 0
	// The modes may come from the environment, so one tcprules file or tcpserver
	// line per port can choose them.
	cfg.ImplicitTLS = getenv("SMTPS") != ""
	cfg.Submission = getenv("SUBMISSION") != ""
	v, err := LoadValidator(ctl)
	if err != nil {
		return nil, nil, err
	}
	if v != nil {
		v.Log = func(format string, args ...any) {
			if cfg.Log != nil {
				fmt.Fprintf(cfg.Log, "qmail-smtpd: "+format+"\n", args...)
			}
		}
		cfg.CheckRcpt = v.Check
	}
	m, err := rcpthosts.Open(ctl.Path)
	if err != nil {
		return nil, nil, err
	}
	cfg.RcptHosts = m.Check
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
	return cfg, func() { m.Close() }, nil
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
	prog := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "QMAILQUEUE="); ok {
			prog = v
		}
	}
	return func() (Message, error) {
		c, err := queueclient.Config{Env: env, Program: prog}.Open()
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}
