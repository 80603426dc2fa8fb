// Package dnsresolve finds where mail for a domain goes: its MX hosts in preference
// order (random among equals), the implicit MX of a domain with addresses but no MX,
// the null MX of RFC 7505, and the IPv4 and IPv6 addresses of each host.
//
// It talks DNS itself (github.com/miekg/dns) to the servers of /etc/resolv.conf, so
// that a SERVFAIL (temporary) is told apart from an NXDOMAIN (permanent), which the
// standard library's resolver does not let a caller do reliably.
//
// Every answer is treated as hostile: record counts are capped, CNAME chains are
// bounded, and names are only ever compared and dialled, never handed to a shell.
package dnsresolve

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Limits on what a hostile or broken DNS answer can make us do.
const (
	maxCNAMEHops = 8  // CNAME links followed for one name
	maxMX        = 32 // MX records considered per domain
	maxAddrs     = 16 // addresses kept per host and family
)

// Kind classifies a failure.
type Kind int

const (
	// Temporary: SERVFAIL, timeouts, unreachable servers. Try again later.
	Temporary Kind = iota
	// NoHost: the name does not exist (NXDOMAIN).
	NoHost
	// NoAddress: the name exists but has neither a usable MX nor an address.
	NoAddress
	// NullMX: the domain says it accepts no mail (RFC 7505).
	NullMX
)

// Error is a failed lookup.
type Error struct {
	Kind Kind
	Name string // the name looked up
	Msg  string
}

func (e *Error) Error() string { return e.Name + ": " + e.Msg }

// Temporary reports whether the lookup may succeed later.
func (e *Error) Temporary() bool { return e.Kind == Temporary }

// KindOf returns the Kind of err, Temporary for anything that is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Temporary
}

// Host is one place to deliver to: an MX target (or the domain itself for an implicit
// MX) with its preference and addresses, IPv6 first then IPv4 within each family's
// answer order.
type Host struct {
	Name     string // without the trailing dot
	Pref     int
	Implicit bool // no MX records: the domain's own addresses
	Addrs    []netip.Addr
}

// Resolver queries DNS servers directly.
type Resolver struct {
	// Servers are "ip:port" addresses tried in order.
	Servers []string
	// Timeout bounds each query to one server. Zero means 5 seconds.
	Timeout time.Duration
	// Shuffle orders MX hosts of equal preference; nil means a random shuffle.
	Shuffle func(n int, swap func(i, j int))
}

// ResolvConf is where the system's resolvers are listed.
const ResolvConf = "/etc/resolv.conf"

// FromResolvConf returns a Resolver using the nameservers listed in path. A missing
// file, or one without nameserver lines, means 127.0.0.1 as in resolv.conf(5).
func FromResolvConf(path string) (*Resolver, error) {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("dnsresolve: %w", err)
	}
	r := &Resolver{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		host, _, _ := strings.Cut(f[1], "%") // a zone suffix is not dialable here
		a, err := netip.ParseAddr(host)
		if err != nil {
			continue
		}
		r.Servers = append(r.Servers, netip.AddrPortFrom(a, 53).String())
	}
	if len(r.Servers) == 0 {
		r.Servers = []string{"127.0.0.1:53"}
	}
	return r, nil
}

func (r *Resolver) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return 5 * time.Second
}

// Literal returns the address of a host written as an address literal, "[1.2.3.4]",
// "[IPv6:::1]" or a bare address; ok is false for a name.
func Literal(host string) (netip.Addr, bool) {
	h := host
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
		if len(h) > 5 && strings.EqualFold(h[:5], "ipv6:") {
			h = h[5:]
		}
	}
	a, err := netip.ParseAddr(h)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// exchange sends one question to the servers in turn and returns the first answer
// that is not a server failure. It returns a Temporary error when no server gives one.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.SetEdns0(4096, false)
	why := "no DNS servers configured"
	for _, srv := range r.Servers {
		if err := ctx.Err(); err != nil {
			return nil, &Error{Kind: Temporary, Name: name, Msg: err.Error()}
		}
		c := &dns.Client{Net: "udp", Timeout: r.timeout()}
		in, _, err := c.ExchangeContext(ctx, m, srv)
		if err == nil && in.Truncated {
			c.Net = "tcp"
			in, _, err = c.ExchangeContext(ctx, m, srv)
		}
		if err != nil {
			why = fmt.Sprintf("DNS server %s: %v", srv, err)
			continue
		}
		if len(in.Question) != 1 || !strings.EqualFold(in.Question[0].Name, m.Question[0].Name) || in.Question[0].Qtype != qtype {
			why = fmt.Sprintf("DNS server %s answered another question", srv)
			continue
		}
		switch in.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
			return in, nil
		default:
			why = fmt.Sprintf("DNS server %s answered %s", srv, dns.RcodeToString[in.Rcode])
		}
	}
	return nil, &Error{Kind: Temporary, Name: name, Msg: why}
}

// lookup returns the records of qtype for name, following CNAME chains within an
// answer and across queries. nx is true when the final name does not exist.
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) (rrs []dns.RR, nx bool, err error) {
	cur := dns.Fqdn(strings.ToLower(name))
	hops := 0
	for {
		in, err := r.exchange(ctx, cur, qtype)
		if err != nil {
			return nil, false, err
		}
		// Walk the chain the server gave us.
		followed := false
		for {
			next := ""
			for _, rr := range in.Answer {
				if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, cur) {
					next = strings.ToLower(c.Target)
					break
				}
			}
			if next == "" {
				break
			}
			if hops++; hops > maxCNAMEHops {
				return nil, false, &Error{Kind: NoHost, Name: name, Msg: "CNAME chain too long or looping"}
			}
			cur = next
			followed = true
		}
		for _, rr := range in.Answer {
			if rr.Header().Rrtype == qtype && strings.EqualFold(rr.Header().Name, cur) {
				rrs = append(rrs, rr)
			}
		}
		if len(rrs) > 0 {
			return rrs, false, nil
		}
		if in.Rcode == dns.RcodeNameError {
			return nil, true, nil
		}
		// NOERROR without data: either really no data, or the server stopped at a
		// CNAME whose target it did not chase. Ask for the target ourselves.
		if !followed {
			return nil, false, nil
		}
	}
}

// Addrs returns the IPv6 and IPv4 addresses of host (an address literal is returned
// as is). NXDOMAIN for both families is a NoHost error, no addresses at all a
// NoAddress error, and a temporary failure without any address a Temporary one.
func (r *Resolver) Addrs(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, ok := Literal(host); ok {
		return []netip.Addr{a}, nil
	}
	host, ok := asciiName(host)
	if !ok {
		return nil, &Error{Kind: NoHost, Name: host, Msg: "not a valid host name"}
	}
	type res struct {
		addrs []netip.Addr
		nx    bool
		err   error
	}
	var v6, v4 res
	var wg sync.WaitGroup
	for _, q := range []struct {
		t   uint16
		out *res
	}{{dns.TypeAAAA, &v6}, {dns.TypeA, &v4}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rrs, nx, err := r.lookup(ctx, host, q.t)
			q.out.nx, q.out.err = nx, err
			for _, rr := range rrs {
				var ip net.IP
				switch v := rr.(type) {
				case *dns.A:
					ip = v.A
				case *dns.AAAA:
					ip = v.AAAA
				}
				if a, ok := netip.AddrFromSlice(ip); ok && len(q.out.addrs) < maxAddrs {
					q.out.addrs = append(q.out.addrs, a.Unmap())
				}
			}
		}()
	}
	wg.Wait()
	addrs := append(v6.addrs, v4.addrs...)
	if len(addrs) > 0 {
		return addrs, nil
	}
	for _, e := range []error{v4.err, v6.err} {
		if e != nil && KindOf(e) == Temporary {
			return nil, e
		}
	}
	for _, e := range []error{v4.err, v6.err} {
		if e != nil {
			return nil, e
		}
	}
	if v4.nx && v6.nx {
		return nil, &Error{Kind: NoHost, Name: host, Msg: "no such host (NXDOMAIN)"}
	}
	return nil, &Error{Kind: NoAddress, Name: host, Msg: "no IP address"}
}

// MX returns the hosts to try for mail to domain, best preference first, hosts of
// equal preference in random order, each with its addresses. A domain without MX
// records is its own implicit MX. Hosts without addresses are left out; when none is
// left the error says why (Temporary if any lookup failed temporarily).
func (r *Resolver) MX(ctx context.Context, domain string) ([]Host, error) {
	if a, ok := Literal(domain); ok {
		return []Host{{Name: domain, Implicit: true, Addrs: []netip.Addr{a}}}, nil
	}
	domain, ok := asciiName(domain)
	if !ok {
		return nil, &Error{Kind: NoHost, Name: domain, Msg: "not a valid domain name"}
	}
	rrs, nx, err := r.lookup(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	if nx {
		return nil, &Error{Kind: NoHost, Name: domain, Msg: "no such domain (NXDOMAIN)"}
	}
	if len(rrs) == 0 {
		addrs, err := r.Addrs(ctx, domain)
		if err != nil {
			var e *Error
			if errors.As(err, &e) && e.Kind != Temporary {
				return nil, &Error{Kind: NoAddress, Name: domain, Msg: "no MX record and no IP address"}
			}
			return nil, err
		}
		return []Host{{Name: strings.TrimSuffix(domain, "."), Implicit: true, Addrs: addrs}}, nil
	}

	var hosts []Host
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		if mx.Mx == "." {
			if len(rrs) == 1 {
				return nil, &Error{Kind: NullMX, Name: domain, Msg: "the domain accepts no mail (null MX)"}
			}
			continue // a null MX among others is a misconfiguration; use the others
		}
		if len(hosts) >= maxMX {
			break
		}
		hosts = append(hosts, Host{Name: strings.ToLower(strings.TrimSuffix(mx.Mx, ".")), Pref: int(mx.Preference)})
	}
	sort.SliceStable(hosts, func(i, j int) bool { return hosts[i].Pref < hosts[j].Pref })
	shuffle := r.Shuffle
	if shuffle == nil {
		shuffle = rand.Shuffle
	}
	for i := 0; i < len(hosts); {
		j := i
		for j < len(hosts) && hosts[j].Pref == hosts[i].Pref {
			j++
		}
		group := hosts[i:j]
		shuffle(len(group), func(a, b int) { group[a], group[b] = group[b], group[a] })
		i = j
	}

	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hosts[i].Addrs, errs[i] = r.Addrs(ctx, hosts[i].Name)
		}()
	}
	wg.Wait()
	var out []Host
	var temp error
	for i, h := range hosts {
		if len(h.Addrs) > 0 {
			out = append(out, h)
		} else if errs[i] != nil && KindOf(errs[i]) == Temporary && temp == nil {
			temp = errs[i]
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	if temp != nil {
		return nil, temp
	}
	return nil, &Error{Kind: NoAddress, Name: domain, Msg: "no mail exchanger has an IP address"}
}

// asciiName returns name as DNS knows it: an internationalised name (SMTPUTF8 mail
// may carry one) becomes its A-labels. ok is false for anything that cannot be a
// DNS name.
func asciiName(name string) (string, bool) {
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			a, ok := toALabels(name)
			if !ok {
				return name, false
			}
			name = a
			break
		}
	}
	return name, validName(name)
}

// validName accepts what could be a DNS name in presentation form: no empty labels
// (except a trailing root), labels of at most 63 bytes, at most 253 bytes in all.
func validName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; c <= ' ' || c >= 0x7f || c == '\\' {
				return false
			}
		}
	}
	return true
}
