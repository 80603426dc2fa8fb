package remote

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/idna"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/dnsresolve"
	"github.com/notqmail/notqmail/src/qmtp"
	"github.com/notqmail/notqmail/src/tcpto"
)

// Control files read by qmail-remote besides qmail's own (helohost, smtproutes,
// timeoutconnect, timeoutremote).
const (
	// OutgoingIPFile holds source addresses: a line "ADDR[,ADDR]" sets the default,
	// "domain:ADDR[,ADDR]" the one for a domain (".domain" for its subdomains), at
	// most one address per family. It extends netqmail's one-line outgoingip patch.
	OutgoingIPFile = "outgoingip"
	// TLSDestinationsFile holds "domain:policy" lines, matched like smtproutes:
	// policy is may, none, encrypt, verify, or sha256=HEX[,HEX] (pinned leaf
	// certificates; colons in HEX are allowed).
	TLSDestinationsFile = "tlsdestinations"
	// ClientCertFile is a PEM file with the client certificate (chain) and its key,
	// offered to servers that ask for one. The name is the qmail TLS patch's.
	ClientCertFile = "clientcert.pem"
)

// Route is one smtproutes line.
type Route struct {
	Domain string // lower case; "" is the default route, ".x" matches subdomains of x
	Relay  string // "" means MX lookup
	Port   int    // 0 means 25
}

// Routes is the parsed smtproutes.
type Routes []Route

// Lookup finds the route for host as qmail does: host itself, then each ".suffix"
// from the longest, then the default route. ok is false when nothing matches.
func (rs Routes) Lookup(host string) (Route, bool) {
	return lookupDomain(rs, host, func(r Route) string { return r.Domain })
}

// lookupDomain finds the entry for host by qmail's smtproutes rule.
func lookupDomain[T any](list []T, host string, key func(T) string) (T, bool) {
	host = canonDomain(host)
	m := make(map[string]T, len(list))
	for _, e := range list {
		k := canonDomain(key(e))
		if _, dup := m[k]; !dup { // the first line wins, as in qmail's constmap
			m[k] = e
		}
	}
	for i := 0; i <= len(host); i++ {
		if i == 0 || i == len(host) || host[i] == '.' {
			if e, ok := m[host[i:]]; ok {
				return e, true
			}
		}
	}
	var zero T
	return zero, false
}

// ParseRoutes parses smtproutes lines; errors name the file and line.
func ParseRoutes(ctl control.Dir, lines []control.Line) (Routes, error) {
	var rs Routes
	for _, l := range lines {
		dom, val, ok := strings.Cut(l.Text, ":")
		if !ok {
			return nil, ctl.Errorf("smtproutes", l.N, "no colon: want domain:relay[:port]")
		}
		r := Route{Domain: strings.ToLower(strings.TrimSpace(dom))}
		relay, port := val, ""
		if strings.HasPrefix(val, "[") {
			end := strings.IndexByte(val, ']')
			if end < 0 {
				return nil, ctl.Errorf("smtproutes", l.N, "unclosed [ in relay %q", val)
			}
			relay, port = val[:end+1], val[end+1:]
			if port != "" && port[0] != ':' {
				return nil, ctl.Errorf("smtproutes", l.N, "junk after ] in relay %q", val)
			}
			port = strings.TrimPrefix(port, ":")
		} else {
			relay, port, _ = strings.Cut(val, ":")
		}
		r.Relay = strings.TrimSpace(relay)
		if strings.ContainsAny(r.Relay, " \t") {
			return nil, ctl.Errorf("smtproutes", l.N, "white space in relay %q", r.Relay)
		}
		if port != "" {
			n, err := strconv.Atoi(port)
			if err != nil || n < 1 || n > 65535 {
				return nil, ctl.Errorf("smtproutes", l.N, "bad port %q", port)
			}
			r.Port = n
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// SourceRule is one outgoingip line.
type SourceRule struct {
	Domain   string
	V4, V6   netip.Addr
	HasAddrs bool
}

// ParseOutgoingIP parses outgoingip lines.
func ParseOutgoingIP(ctl control.Dir, lines []control.Line) ([]SourceRule, error) {
	var out []SourceRule
	for _, l := range lines {
		dom, list := "", l.Text
		if _, err := netip.ParseAddr(strings.SplitN(l.Text, ",", 2)[0]); err != nil {
			var ok bool
			dom, list, ok = strings.Cut(l.Text, ":")
			if !ok {
				return nil, ctl.Errorf(OutgoingIPFile, l.N, "not an address or domain:address: %q", l.Text)
			}
		}
		r := SourceRule{Domain: strings.ToLower(strings.TrimSpace(dom)), HasAddrs: true}
		for _, s := range strings.Split(list, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil || a.Zone() != "" {
				return nil, ctl.Errorf(OutgoingIPFile, l.N, "not an IP address: %q", s)
			}
			a = a.Unmap()
			if a.Is4() && !r.V4.IsValid() {
				r.V4 = a
			} else if a.Is6() && !r.V6.IsValid() {
				r.V6 = a
			} else {
				return nil, ctl.Errorf(OutgoingIPFile, l.N, "more than one address of a family")
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// PolicyFile is the tlsdestinations control file as a TLSPolicySource.
type PolicyFile []policyLine

type policyLine struct {
	domain string
	pol    TLSPolicy
}

// TLSPolicy returns the policy of the line matching domain, or TLSMay.
func (p PolicyFile) TLSPolicy(_ context.Context, domain, _ string) (TLSPolicy, error) {
	l, ok := lookupDomain(p, domain, func(l policyLine) string { return l.domain })
	if !ok {
		return TLSPolicy{Mode: TLSMay}, nil
	}
	return l.pol, nil
}

// ParseTLSDestinations parses tlsdestinations lines.
func ParseTLSDestinations(ctl control.Dir, lines []control.Line) (PolicyFile, error) {
	var out PolicyFile
	for _, l := range lines {
		dom, val, ok := strings.Cut(l.Text, ":")
		if !ok {
			return nil, ctl.Errorf(TLSDestinationsFile, l.N, "no colon: want domain:policy")
		}
		val = strings.TrimSpace(val)
		var pol TLSPolicy
		switch {
		case val == "may":
			pol.Mode = TLSMay
		case val == "none":
			pol.Mode = TLSNone
		case val == "encrypt":
			pol.Mode = TLSEncrypt
		case val == "verify":
			pol.Mode = TLSVerify
		case strings.HasPrefix(val, "sha256="):
			pol.Mode = TLSVerify
			for _, h := range strings.Split(val[len("sha256="):], ",") {
				b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(h), ":", ""))
				if err != nil || len(b) != sha256.Size {
					return nil, ctl.Errorf(TLSDestinationsFile, l.N, "not a SHA-256 fingerprint: %q", h)
				}
				pol.Pins = append(pol.Pins, [sha256.Size]byte(b))
			}
		default:
			return nil, ctl.Errorf(TLSDestinationsFile, l.N, "unknown policy %q (want may, none, encrypt, verify or sha256=HEX)", val)
		}
		out = append(out, policyLine{domain: strings.ToLower(strings.TrimSpace(dom)), pol: pol})
	}
	return out, nil
}

// LoadConfig reads qmail-remote's control files. The resolver, the tcpto file and
// the roots for certificate verification are the caller's to set.
func LoadConfig(ctl control.Dir) (*Config, error) {
	c := &Config{}
	var err error
	if c.Helo, err = ctl.LineOrMe("helohost", "localhost"); err != nil {
		return nil, err
	}
	if strings.ContainsFunc(c.Helo, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, &control.Error{File: ctl.File("helohost"), Line: 1, Msg: fmt.Sprintf("white space or control character in %q", c.Helo)}
	}
	n, err := ctl.Int("timeoutconnect", 60)
	if err != nil {
		return nil, err
	}
	c.ConnectTimeout = time.Duration(n) * time.Second
	if n, err = ctl.Int("timeoutremote", 1200); err != nil {
		return nil, err
	}
	c.Timeout = time.Duration(n) * time.Second
	lines, err := ctl.Lines("smtproutes")
	if err != nil {
		return nil, err
	}
	if c.Routes, err = ParseRoutes(ctl, lines); err != nil {
		return nil, err
	}
	if c.QMTPRoutes, err = qmtp.LoadRoutes(ctl); err != nil {
		return nil, err
	}
	if lines, err = ctl.Lines(OutgoingIPFile); err != nil {
		return nil, err
	}
	if c.Sources, err = ParseOutgoingIP(ctl, lines); err != nil {
		return nil, err
	}
	if lines, err = ctl.Lines(TLSDestinationsFile); err != nil {
		return nil, err
	}
	pf, err := ParseTLSDestinations(ctl, lines)
	if err != nil {
		return nil, err
	}
	c.TLSPolicies = pf
	if _, ok, err := ctl.Line(ClientCertFile); err != nil {
		return nil, err
	} else if ok {
		cert, err := tls.LoadX509KeyPair(ctl.File(ClientCertFile), ctl.File(ClientCertFile))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, &control.Error{File: ctl.File(ClientCertFile), Msg: "unusable client certificate: " + err.Error()}
		}
		if err == nil {
			c.ClientCert = &cert
		}
	}
	return c, nil
}

// canonDomain is the form in which a domain is matched against control lines: lower
// case, without a trailing dot, and with internationalized labels as A-labels under
// the UTS #46 mapping the resolver uses. Every spelling that reaches the same DNS
// name (U-label or A-label, full-width letters or dots, "example.com.") then finds
// the same line, so mail cannot slip past a route or a TLS requirement by the way
// its address is written. A leading "." (a subdomain line) is kept.
func canonDomain(d string) string {
	dot := ""
	if strings.HasPrefix(d, ".") {
		dot, d = ".", d[1:]
	}
	if !isASCII(d) {
		if a, err := idna.Lookup.ToASCII(d); err == nil {
			d = a
		}
	}
	return dot + strings.TrimSuffix(strings.ToLower(d), ".")
}

// LoadSystemConfig is qmail-remote's whole configuration: LoadConfig, the resolver
// from resolvConf (normally /etc/resolv.conf) and the tcpto file at tcptoPath.
// qmail-remote and qmail-rspawn's in-process deliveries both use it, so both read
// the same files the same way.
func LoadSystemConfig(ctl control.Dir, resolvConf, tcptoPath string) (*Config, error) {
	cfg, err := LoadConfig(ctl)
	if err != nil {
		return nil, err
	}
	res, err := dnsresolve.FromResolvConf(resolvConf)
	if err != nil {
		return nil, err
	}
	cfg.Resolver = res
	cfg.TCPTO = &tcpto.File{Path: tcptoPath}
	return cfg, nil
}
