// Package remote is qmail-remote: it delivers one message to the SMTP servers of one
// domain and reports per recipient and per message in qmail-remote(8)'s format.
//
// Routing follows qmail (smtproutes, then MX with preference order and random choice
// among equals, then the implicit MX), with IPv6 and IPv4, null MX, and the
// lock/tcpto record of timed-out hosts. The SMTP client speaks ESMTP (PIPELINING,
// SIZE, 8BITMIME, SMTPUTF8, STARTTLS) and falls back to HELO; what goes out is always
// CR LF terminated and dot-stuffed.
package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/notqmail/notqmail/src/dnsresolve"
	"github.com/notqmail/notqmail/src/qmtp"
	"github.com/notqmail/notqmail/src/tcpto"
)

// Resolver finds hosts and addresses; *dnsresolve.Resolver is one.
type Resolver interface {
	MX(ctx context.Context, domain string) ([]dnsresolve.Host, error)
	Addrs(ctx context.Context, host string) ([]netip.Addr, error)
}

// Config is everything a delivery needs besides the message.
type Config struct {
	Helo           string
	ConnectTimeout time.Duration
	Timeout        time.Duration
	Routes         Routes
	Sources        []SourceRule
	TLSPolicies    TLSPolicySource // nil: opportunistic TLS everywhere
	ClientCert     *tls.Certificate
	RootCAs        *x509.CertPool // nil: the system's roots
	Resolver       Resolver
	TCPTO          *tcpto.File // nil: no record of timed-out hosts
	// LocalAddrs lists this host's addresses, for qmail's rule that a host never
	// relays to an MX no better than itself. Nil means the interfaces' addresses.
	LocalAddrs func() []netip.Addr
	// Port is the SMTP port when smtproutes names none; 0 means 25.
	Port int
	// QMTPRoutes are the destinations delivered by QMTP (control/qmtproutes, qmtp.go).
	QMTPRoutes qmtp.Routes
	// Pool, if set, keeps connections open between deliveries (see Pool); nil means
	// one connection per delivery, closed with QUIT, as qmail-remote does.
	Pool *Pool
	// HappyDelay is how long a connection attempt runs before the next address is
	// tried in parallel (RFC 8305); 0 means 250ms.
	HappyDelay time.Duration
}

// WriteTo writes the outcome as qmail-remote does: one report per recipient
// ("r", or "h"/"s" and a text), then the message report, each ending in NUL.
func (o Outcome) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	for _, r := range o.Recipients {
		b.WriteByte(r.Status)
		b.WriteString(nulFree(r.Text))
		b.WriteByte(0)
	}
	b.WriteByte(o.Status)
	b.WriteString(nulFree(o.Text))
	b.WriteByte(0)
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

func nulFree(s string) string { return strings.ReplaceAll(s, "\x00", "?") }

// Fixed texts, in qmail's words where qmail has them.
const (
	textNoConn    = "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"
	textReadMsg   = "Unable to read message. (#4.3.0)\n"
	textTempDNS   = "Sorry, I couldn't find any host by that name. (#4.1.2)\n"
	textNoMX      = "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n"
	textAmbigMX   = "Sorry. Although I'm listed as a best-preference MX or A for that host,\nit isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n"
	textUsage     = "I (qmail-remote) was invoked improperly. (#5.3.5)\n"
	textControl   = "Unable to read control files. (#4.3.0)\n"
	textBadSender = "The envelope sender contains a control character, or a space or angle bracket in its domain, which SMTP cannot carry. (#5.1.7)\n"
	textBadRcpt   = "The recipient address contains a control character, or a space or angle bracket in its domain, which SMTP cannot carry. (#5.1.3)\n"
	prefRelay     = 300000 // smtproutes: every address may be used
	prefAnything  = 1 << 30
)

// UsageOutcome is the report for bad arguments.
func UsageOutcome() Outcome { return Outcome{Status: MsgPerm, Text: textUsage} }

// ControlOutcome is the report for unreadable or malformed control files.
func ControlOutcome(err error) Outcome {
	return Outcome{Status: MsgTemp, Text: textControl + oneLine(err.Error()) + "\n"}
}

// Deliver delivers the message on msg from sender to recipients, all at host, and
// returns the outcome.
func Deliver(ctx context.Context, cfg *Config, host, sender string, recipients []string, msg io.Reader) Outcome {
	// An address with a line break would smuggle SMTP commands; refuse it rather
	// than send it.
	if !sendable(sender) {
		return Outcome{Status: MsgPerm, Text: textBadSender}
	}
	var good []string
	for _, r := range recipients {
		if sendable(r) {
			good = append(good, r)
		}
	}
	if len(good) < len(recipients) {
		return mergeRefused(recipients, func(rs []string) Outcome { return Deliver(ctx, cfg, host, sender, rs, msg) })
	}
	m, err := PrepareMessage(msg)
	if err != nil {
		return Outcome{Status: MsgTemp, Text: textReadMsg}
	}
	defer m.Close()
	if out, ok := cfg.deliverQMTP(ctx, host, sender, recipients, m); ok {
		return out
	}

	port := cfg.Port
	if port == 0 {
		port = 25
	}
	var hosts []dnsresolve.Host
	prefme := prefAnything
	if route, ok := cfg.Routes.Lookup(host); ok && route.Relay != "" {
		if route.Port != 0 {
			port = route.Port
		}
		addrs, err := cfg.Resolver.Addrs(ctx, route.Relay)
		if err != nil {
			return dnsOutcome(route.Relay, err)
		}
		hosts = []dnsresolve.Host{{Name: route.Relay, Addrs: addrs}}
		prefme = prefRelay
	} else {
		if ok && route.Port != 0 {
			port = route.Port // an extension: "domain::port" is MX on another port
		}
		hosts, err = cfg.Resolver.MX(ctx, host)
		if err != nil {
			return dnsOutcome(host, err)
		}
		prefme = bestLocalPref(hosts, cfg.localAddrs())
	}

	var policy TLSPolicySource = PolicyFile(nil)
	if cfg.TLSPolicies != nil {
		policy = cfg.TLSPolicies
	}
	var last *Outcome
	var lastErr error
	tried := false
	for _, h := range hosts {
		if h.Pref >= prefme {
			continue
		}
		tried = true
		pol, err := policy.TLSPolicy(ctx, host, h.Name)
		if err != nil {
			lastErr = err
			continue
		}
		if out, ok := cfg.tryMXPS(ctx, host, h, pol, sender, recipients, m); ok {
			return out
		}
		sc := sessionConfig{
			Helo: cfg.Helo, Timeout: cfg.timeout(), Policy: pol, Host: h.Name,
			RootCAs: cfg.RootCAs, Cert: cfg.ClientCert,
			Envelope: Envelope{Sender: sender, Recipients: recipients}, Message: m,
		}
		if out, ok := cfg.reusePooled(host, h, port, sc); ok {
			return out // a reused connection got as far as MAIL FROM: no next host
		}
		conn, peer, err := cfg.dialHost(ctx, host, h.Addrs, port)
		if err != nil {
			lastErr = err
			continue
		}
		out := converse(conn, peer, sc, cfg.Pool, cfg.poolKey(host, h.Name, peer, port, pol))
		if !out.nextHost {
			return out
		}
		last = &out
	}
	if !tried {
		return Outcome{Status: MsgPerm, Text: textAmbigMX}
	}
	if last != nil {
		return *last
	}
	text := textNoConn
	if lastErr != nil {
		text += oneLine(lastErr.Error()) + "\n"
	}
	return Outcome{Status: MsgTemp, Text: text}
}

// reusePooled delivers over an idle pooled connection to one of h's addresses, tried
// in order and skipping those lock/tcpto holds as unreachable, as dialHost would. ok
// is false when there is none, or it was stale.
func (cfg *Config) reusePooled(domain string, h dnsresolve.Host, port int, sc sessionConfig) (Outcome, bool) {
	if cfg.Pool == nil {
		return Outcome{}, false
	}
	for _, a := range h.Addrs {
		if cfg.TCPTO != nil && cfg.TCPTO.Blocked(a) {
			continue
		}
		if out, ok := cfg.Pool.reuse(cfg.poolKey(domain, h.Name, a, port, sc.Policy), sc); ok {
			return out, true
		}
	}
	return Outcome{}, false
}

func (cfg *Config) timeout() time.Duration {
	if cfg.Timeout > 0 {
		return cfg.Timeout
	}
	return 1200 * time.Second
}

// dnsOutcome reports a failed lookup of name.
func dnsOutcome(name string, err error) Outcome {
	detail := oneLine(err.Error()) + "\n"
	switch dnsresolve.KindOf(err) {
	case dnsresolve.NoHost:
		return Outcome{Status: MsgPerm, Text: "Sorry, I couldn't find any host named " + safe(name) + ". (#5.1.2)\n" + detail}
	case dnsresolve.NoAddress:
		return Outcome{Status: MsgPerm, Text: textNoMX + detail}
	case dnsresolve.NullMX:
		return Outcome{Status: MsgPerm, Text: "Sorry, " + safe(name) + " does not accept mail: it publishes a null MX (RFC 7505). (#5.1.10)\n"}
	}
	return Outcome{Status: MsgTemp, Text: textTempDNS + detail}
}

// safe makes a name printable as qmail's outsafe does.
func safe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 33 || c > 126 {
			b[i] = '?'
		}
	}
	return string(b)
}

// bestLocalPref returns the preference of the best MX that is this host, or a value
// above every preference when none is: only better MXs may be used.
func bestLocalPref(hosts []dnsresolve.Host, local []netip.Addr) int {
	best := prefAnything
	for _, h := range hosts {
		for _, a := range h.Addrs {
			for _, l := range local {
				if a == l && h.Pref < best {
					best = h.Pref
				}
			}
		}
	}
	return best
}

func (cfg *Config) localAddrs() []netip.Addr {
	if cfg.LocalAddrs != nil {
		return cfg.LocalAddrs()
	}
	// Connecting to an unspecified address reaches this host too.
	out := []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, ia := range ifas {
		if p, err := netip.ParsePrefix(ia.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// source returns the local address to send from to reach addr, if configured.
func (cfg *Config) source(domain string, addr netip.Addr) net.Addr {
	r, ok := lookupDomain(cfg.Sources, domain, func(r SourceRule) string { return r.Domain })
	if !ok {
		return nil
	}
	src := r.V6
	if addr.Is4() {
		src = r.V4
	}
	if !src.IsValid() {
		return nil
	}
	return &net.TCPAddr{IP: src.AsSlice()}
}

// dialHost connects to one of a host's addresses, IPv6 and IPv4 interleaved and
// raced in the manner of RFC 8305: each attempt gets a head start of HappyDelay
// before the next begins, and the first to connect wins. Addresses the tcpto record
// holds as unreachable are skipped.
func (cfg *Config) dialHost(ctx context.Context, domain string, addrs []netip.Addr, port int) (net.Conn, netip.Addr, error) {
	var order []netip.Addr
	var v6, v4 []netip.Addr
	for _, a := range addrs {
		if cfg.TCPTO != nil && cfg.TCPTO.Blocked(a) {
			continue
		}
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	for i := 0; i < len(v6) || i < len(v4); i++ {
		if i < len(v6) {
			order = append(order, v6[i])
		}
		if i < len(v4) {
			order = append(order, v4[i])
		}
	}
	if len(order) == 0 {
		return nil, netip.Addr{}, errors.New("every address is marked unreachable in lock/tcpto")
	}
	delay := cfg.HappyDelay
	if delay <= 0 {
		delay = 250 * time.Millisecond
	}
	connTimeout := cfg.ConnectTimeout
	if connTimeout <= 0 {
		connTimeout = 60 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		conn net.Conn
		addr netip.Addr
		err  error
	}
	results := make(chan result, len(order))
	next, running := 0, 0
	var headStart <-chan time.Time
	launch := func() {
		a := order[next]
		next++
		running++
		d := net.Dialer{Timeout: connTimeout, LocalAddr: cfg.source(domain, a)}
		go func() {
			c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(a, uint16(port)).String())
			results <- result{c, a, err}
		}()
		headStart = nil
		if next < len(order) {
			headStart = time.After(delay)
		}
	}
	launch()
	var lastErr error
	for running > 0 {
		select {
		case r := <-results:
			running--
			if r.err == nil {
				cfg.noteTCPTO(r.addr, nil)
				cancel()
				go func(n int) { // close the losers that connected anyway
					for ; n > 0; n-- {
						if l := <-results; l.conn != nil {
							l.conn.Close()
						}
					}
				}(running)
				return r.conn, r.addr, nil
			}
			cfg.noteTCPTO(r.addr, r.err)
			lastErr = r.err
			if running == 0 && next < len(order) {
				launch()
			}
		case <-headStart:
			launch()
		}
	}
	return nil, netip.Addr{}, lastErr
}

func (cfg *Config) noteTCPTO(a netip.Addr, err error) {
	if cfg.TCPTO == nil || errors.Is(err, context.Canceled) {
		return
	}
	var ne net.Error
	timedOut := err != nil && errors.As(err, &ne) && ne.Timeout()
	cfg.TCPTO.Note(a, timedOut)
}

// String describes the outcome for logs and tests.
func (o Outcome) String() string {
	var b strings.Builder
	for _, r := range o.Recipients {
		fmt.Fprintf(&b, "%c%s|", r.Status, r.Text)
	}
	fmt.Fprintf(&b, "%c%s", o.Status, o.Text)
	return b.String()
}

// sendable reports whether an address can go into an SMTP command: no control
// characters (CR and LF above all), not absurdly long, and no space or angle
// bracket where quoteAddr cannot quote it (the domain, or an address without one),
// which would end the path and add ESMTP parameters.
func sendable(addr string) bool {
	if len(addr) > 1000 {
		return false
	}
	for i := 0; i < len(addr); i++ {
		if addr[i] < 32 || addr[i] == 127 {
			return false
		}
	}
	return !strings.ContainsAny(addr[strings.LastIndexByte(addr, '@')+1:], " <>")
}

// mergeRefused refuses the unsendable recipients itself, delivers to the others with
// deliver, and puts the reports back in the recipients' order.
func mergeRefused(recipients []string, deliver func([]string) Outcome) Outcome {
	var good []string
	for _, r := range recipients {
		if sendable(r) {
			good = append(good, r)
		}
	}
	if len(good) == 0 {
		out := Outcome{Status: MsgPerm, Text: "Giving up: no recipient can be sent.\n"}
		for range recipients {
			out.Recipients = append(out.Recipients, RecipientResult{Status: RcptPerm, Text: textBadRcpt})
		}
		return out
	}
	sub := deliver(good)
	out := Outcome{Status: sub.Status, Text: sub.Text}
	if len(sub.Recipients) == 0 {
		return out // the message failed as a whole: no recipient reports at all
	}
	j := 0
	for _, r := range recipients {
		if !sendable(r) {
			out.Recipients = append(out.Recipients, RecipientResult{Status: RcptPerm, Text: textBadRcpt})
			continue
		}
		out.Recipients = append(out.Recipients, sub.Recipients[j])
		j++
	}
	return out
}
