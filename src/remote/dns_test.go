package remote

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/notqmail/notqmail/src/dnsresolve"
)

// dnsServer answers from a fixed list of records on a UDP port of 127.0.0.1: records
// for the asked name and type, NXDOMAIN for unknown names, SERVFAIL for names listed
// as failing.
func dnsServer(t *testing.T, servfail []string, records ...string) *dnsresolve.Resolver {
	t.Helper()
	var rrs []dns.RR
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		rrs = append(rrs, rr)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		for _, f := range servfail {
			if strings.EqualFold(f, q.Name) {
				m.Rcode = dns.RcodeServerFailure
				w.WriteMsg(m)
				return
			}
		}
		known := false
		for _, rr := range rrs {
			if strings.EqualFold(rr.Header().Name, q.Name) {
				known = true
				if rr.Header().Rrtype == q.Qtype {
					m.Answer = append(m.Answer, rr)
				}
			}
		}
		if !known {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &dns.Server{Addr: "127.0.0.1:0", Net: "udp", Handler: h, NotifyStartedFunc: func() { close(started) }}
	go srv.ListenAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return &dnsresolve.Resolver{Servers: []string{srv.PacketConn.LocalAddr().String()}, Timeout: 2 * time.Second}
}

// mxConfig delivers through DNS to 127.0.0.1:port. This host's own addresses are
// hidden, since every test server is on this host.
func mxConfig(res *dnsresolve.Resolver, port int) *Config {
	return &Config{
		Helo: "client.example.test", ConnectTimeout: 10 * time.Second, Timeout: 30 * time.Second,
		Resolver: res, Port: port,
		LocalAddrs: func() []netip.Addr { return nil },
	}
}

func TestPostfixThroughMXWithVerifiedName(t *testing.T) {
	pf := startPostfix(t)
	res := dnsServer(t, nil,
		"example.test. MX 10 mx.example.test.",
		"example.test. MX 20 backup.example.test.",
		"mx.example.test. A 127.0.0.1",
		"backup.example.test. A 127.0.0.1",
	)
	cfg := mxConfig(res, pf.Port)
	cfg.RootCAs = pf.CA.Pool
	out := deliver(t, cfg, "s@client.example.test", []string{"ok@example.test"}, "Subject: via MX\n\nhi\n")
	if out.Status != MsgOK || !strings.Contains(out.Text, "TLS verified (TLS1.3, mx.example.test).") {
		t.Fatalf("%s", out)
	}
	// The backup MX has a certificate for another name: a verify policy fails there
	// and the message is deferred only after every MX was tried.
	res2 := dnsServer(t, nil,
		"example.test. MX 10 backup.example.test.",
		"backup.example.test. A 127.0.0.1",
	)
	cfg = mxConfig(res2, pf.Port)
	cfg.RootCAs = pf.CA.Pool
	cfg.TLSPolicies = PolicyFile{{domain: "example.test", pol: TLSPolicy{Mode: TLSVerify}}}
	out = deliver(t, cfg, "s@client.example.test", []string{"ok@example.test"}, "Subject: via MX\n\nhi\n")
	if out.Status != MsgTemp || !strings.Contains(out.Text, "TLS unverified (TLS1.3: x509: certificate is valid for mx.example.test") {
		t.Fatalf("%s", out)
	}
}

func TestMXFailuresReachTheReport(t *testing.T) {
	res := dnsServer(t, []string{"servfail.test."},
		"nullmx.test. MX 0 .",
		"nomx.test. TXT \"no mail here\"",
	)
	for _, c := range []struct {
		domain string
		status byte
		text   string
	}{
		{"nullmx.test", MsgPerm, "Sorry, nullmx.test does not accept mail: it publishes a null MX (RFC 7505). (#5.1.10)\n"},
		{"nxdomain.test", MsgPerm, "Sorry, I couldn't find any host named nxdomain.test. (#5.1.2)\n"},
		{"servfail.test", MsgTemp, "Sorry, I couldn't find any host by that name. (#4.1.2)\n"},
		{"nomx.test", MsgPerm, textNoMX},
	} {
		out := Deliver(context.Background(), mxConfig(res, 25), c.domain, "s", []string{"r@" + c.domain}, strings.NewReader("x\n"))
		if out.Status != c.status || !strings.HasPrefix(out.Text, c.text) || len(out.Recipients) != 0 {
			t.Errorf("%s: %s", c.domain, out)
		}
	}
}

func TestImplicitMXDelivery(t *testing.T) {
	s := startSink(t)
	res := dnsServer(t, nil, "plain.test. A 127.0.0.1", "plain.test. AAAA ::1")
	out := Deliver(context.Background(), mxConfig(res, s.Port), "plain.test", "s@c.test", []string{"r@plain.test"}, strings.NewReader("Subject: x\n\nhi\n"))
	if out.Status != MsgOK {
		t.Fatalf("%s", out)
	}
	if n := len(s.Messages(t)); n != 1 {
		t.Fatalf("%d messages captured", n)
	}
}

func TestNextMXAfterGreetingFailure(t *testing.T) {
	s := startSink(t, "-r", "CONNECT")
	rec := startRecorder(t, "127.0.0.1:"+itoa(s.Port))
	res := dnsServer(t, nil,
		"two.test. MX 10 mx1.two.test.",
		"two.test. MX 20 mx2.two.test.",
		"mx1.two.test. A 127.0.0.1",
		"mx2.two.test. A 127.0.0.1",
	)
	out := Deliver(context.Background(), mxConfig(res, portOf(rec.Addr)), "two.test", "s@c.test", []string{"r@two.test"}, strings.NewReader("x\n"))
	if out.Status != MsgTemp || !strings.HasPrefix(out.Text, "Connected to 127.0.0.1 but greeting failed.\nRemote host said: 450") {
		t.Fatalf("%s", out)
	}
	if n := rec.Conns(); n != 2 {
		t.Errorf("%d connections, want one per MX", n)
	}

	// Once MAIL has gone out, a failure is final: no second MX.
	s2 := startSink(t, "-r", "MAIL")
	rec2 := startRecorder(t, "127.0.0.1:"+itoa(s2.Port))
	out = Deliver(context.Background(), mxConfig(res, portOf(rec2.Addr)), "two.test", "s@c.test", []string{"r@two.test"}, strings.NewReader("x\n"))
	if out.Status != MsgTemp || !strings.Contains(out.Text, "sender was rejected") || rec2.Conns() != 1 {
		t.Fatalf("%s after %d connections", out, rec2.Conns())
	}
}
