package dnsresolve

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// zone is a tiny authoritative-and-recursive server's data: records in presentation
// form, and names that answer SERVFAIL. Unknown names are NXDOMAIN unless some record
// lives under them.
type zone struct {
	records  []dns.RR
	servfail map[string]bool
	// noChase makes the server stop at a CNAME, like a server that does not recurse.
	noChase bool
}

func newZone(t *testing.T, rrs ...string) *zone {
	z := &zone{servfail: map[string]bool{}}
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("bad test record %q: %v", s, err)
		}
		z.records = append(z.records, rr)
	}
	return z
}

func (z *zone) exists(name string) bool {
	for _, rr := range z.records {
		if strings.EqualFold(rr.Header().Name, name) {
			return true
		}
	}
	return false
}

func (z *zone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if z.servfail[name] {
		m.Rcode = dns.RcodeServerFailure
		w.WriteMsg(m)
		return
	}
	for hops := 0; hops < 20; hops++ {
		var cname *dns.CNAME
		for _, rr := range z.records {
			if !strings.EqualFold(rr.Header().Name, name) {
				continue
			}
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			} else if c, ok := rr.(*dns.CNAME); ok {
				cname = c
			}
		}
		if cname == nil || len(m.Answer) > 0 {
			break
		}
		m.Answer = append(m.Answer, cname)
		name = strings.ToLower(cname.Target)
		if z.noChase {
			break
		}
	}
	if len(m.Answer) == 0 && !z.exists(name) {
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}

// serve runs z on a UDP port of 127.0.0.1 and returns a Resolver using it.
func serve(t *testing.T, z *zone) *Resolver {
	t.Helper()
	started := make(chan struct{})
	srv := &dns.Server{Addr: "127.0.0.1:0", Net: "udp", Handler: z, NotifyStartedFunc: func() { close(started) }}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case <-started:
	case err := <-errc:
		t.Fatalf("dns server: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown() })
	return &Resolver{Servers: []string{srv.PacketConn.LocalAddr().String()}, Timeout: 2 * time.Second}
}

func names(hs []Host) []string {
	var n []string
	for _, h := range hs {
		n = append(n, h.Name)
	}
	return n
}

func TestMXOrderAndAddresses(t *testing.T) {
	z := newZone(t,
		"example.test. MX 20 mx2.example.test.",
		"example.test. MX 10 mx1.example.test.",
		"example.test. MX 30 mx3.example.test.",
		"mx1.example.test. A 192.0.2.1",
		"mx1.example.test. AAAA 2001:db8::1",
		"mx2.example.test. A 192.0.2.2",
		"mx3.example.test. A 192.0.2.3",
	)
	r := serve(t, z)
	hs, err := r.MX(context.Background(), "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(hs), []string{"mx1.example.test", "mx2.example.test", "mx3.example.test"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	want := []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.1")}
	if !reflect.DeepEqual(hs[0].Addrs, want) {
		t.Errorf("mx1 addrs %v, want %v (IPv6 first)", hs[0].Addrs, want)
	}
	if hs[0].Pref != 10 || hs[0].Implicit {
		t.Errorf("mx1 = %+v", hs[0])
	}
}

func TestMXEqualPreferenceIsShuffled(t *testing.T) {
	z := newZone(t,
		"eq.test. MX 10 a.eq.test.",
		"eq.test. MX 10 b.eq.test.",
		"eq.test. MX 5 first.eq.test.",
		"a.eq.test. A 192.0.2.1",
		"b.eq.test. A 192.0.2.2",
		"first.eq.test. A 192.0.2.3",
	)
	r := serve(t, z)
	var groups []int
	r.Shuffle = func(n int, swap func(i, j int)) {
		groups = append(groups, n)
		if n == 2 {
			swap(0, 1)
		}
	}
	hs, err := r.MX(context.Background(), "eq.test")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(hs), []string{"first.eq.test", "b.eq.test", "a.eq.test"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	if !reflect.DeepEqual(groups, []int{1, 2}) {
		t.Errorf("shuffled groups of sizes %v, want [1 2]", groups)
	}

	// With the real shuffle both orders of the equal pair turn up.
	r.Shuffle = nil
	seen := map[string]bool{}
	for i := 0; i < 200 && len(seen) < 2; i++ {
		hs, err := r.MX(context.Background(), "eq.test")
		if err != nil {
			t.Fatal(err)
		}
		seen[strings.Join(names(hs), ",")] = true
	}
	if len(seen) != 2 {
		t.Errorf("random choice among equals produced only %v", seen)
	}
}

func TestImplicitMX(t *testing.T) {
	r := serve(t, newZone(t,
		"nomx.test. A 192.0.2.7",
		"nomx.test. TXT \"hello\"",
	))
	hs, err := r.MX(context.Background(), "nomx.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || !hs[0].Implicit || hs[0].Name != "nomx.test" || hs[0].Addrs[0] != netip.MustParseAddr("192.0.2.7") {
		t.Fatalf("got %+v", hs)
	}
}

func TestNoMXNoAddress(t *testing.T) {
	r := serve(t, newZone(t, "txtonly.test. TXT \"x\""))
	_, err := r.MX(context.Background(), "txtonly.test")
	if KindOf(err) != NoAddress {
		t.Fatalf("err %v kind %v, want NoAddress", err, KindOf(err))
	}
}

func TestNullMX(t *testing.T) {
	r := serve(t, newZone(t,
		"nullmx.test. MX 0 .",
		"nullmx.test. A 192.0.2.9",
	))
	_, err := r.MX(context.Background(), "nullmx.test")
	if KindOf(err) != NullMX {
		t.Fatalf("err %v, want NullMX", err)
	}
	if !strings.Contains(err.Error(), "null MX") {
		t.Errorf("error text %q does not say null MX", err)
	}
}

func TestNXDOMAINIsPermanent(t *testing.T) {
	r := serve(t, newZone(t, "other.test. A 192.0.2.1"))
	_, err := r.MX(context.Background(), "nonexistent.test")
	if KindOf(err) != NoHost {
		t.Fatalf("err %v, want NoHost", err)
	}
	_, err = r.Addrs(context.Background(), "nonexistent.test")
	if KindOf(err) != NoHost {
		t.Fatalf("Addrs err %v, want NoHost", err)
	}
}

func TestSERVFAILIsTemporary(t *testing.T) {
	z := newZone(t,
		"half.test. MX 10 broken.half.test.",
	)
	z.servfail["broken.test."] = true
	z.servfail["broken.half.test."] = true
	r := serve(t, z)
	_, err := r.MX(context.Background(), "broken.test")
	if KindOf(err) != Temporary {
		t.Fatalf("err %v, want Temporary", err)
	}
	if !strings.Contains(err.Error(), "SERVFAIL") {
		t.Errorf("error %q does not name SERVFAIL", err)
	}
	// The MX exists but its only host's addresses fail temporarily.
	_, err = r.MX(context.Background(), "half.test")
	if KindOf(err) != Temporary {
		t.Fatalf("half.test: err %v, want Temporary", err)
	}
}

func TestSERVFAILOneMXOthersUsed(t *testing.T) {
	z := newZone(t,
		"mixed.test. MX 10 bad.mixed.test.",
		"mixed.test. MX 20 good.mixed.test.",
		"good.mixed.test. A 192.0.2.20",
	)
	z.servfail["bad.mixed.test."] = true
	r := serve(t, z)
	hs, err := r.MX(context.Background(), "mixed.test")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(hs); !reflect.DeepEqual(got, []string{"good.mixed.test"}) {
		t.Fatalf("got %v", got)
	}
}

func TestCNAMEChain(t *testing.T) {
	for _, noChase := range []bool{false, true} {
		z := newZone(t,
			"alias.test. CNAME alias2.test.",
			"alias2.test. CNAME real.test.",
			"real.test. MX 10 mx.real.test.",
			"mx.real.test. CNAME mxhost.real.test.",
			"mxhost.real.test. A 192.0.2.30",
		)
		z.noChase = noChase
		r := serve(t, z)
		hs, err := r.MX(context.Background(), "alias.test")
		if err != nil {
			t.Fatalf("noChase=%v: %v", noChase, err)
		}
		if len(hs) != 1 || hs[0].Name != "mx.real.test" || hs[0].Addrs[0] != netip.MustParseAddr("192.0.2.30") {
			t.Fatalf("noChase=%v: got %+v", noChase, hs)
		}
	}
}

func TestCNAMELoop(t *testing.T) {
	z := newZone(t,
		"loop1.test. CNAME loop2.test.",
		"loop2.test. CNAME loop1.test.",
	)
	z.noChase = true
	r := serve(t, z)
	_, err := r.MX(context.Background(), "loop1.test")
	if err == nil || KindOf(err) == Temporary {
		t.Fatalf("err %v, want a permanent error", err)
	}
}

func TestNoServerIsTemporary(t *testing.T) {
	// A UDP port on loopback with nothing listening: refused or timed out.
	r := &Resolver{Servers: []string{"127.0.0.1:1"}, Timeout: 500 * time.Millisecond}
	_, err := r.MX(context.Background(), "example.test")
	if KindOf(err) != Temporary {
		t.Fatalf("err %v, want Temporary", err)
	}
}

func TestLiteral(t *testing.T) {
	for in, want := range map[string]string{
		"[192.0.2.1]":        "192.0.2.1",
		"192.0.2.1":          "192.0.2.1",
		"[IPv6:2001:db8::1]": "2001:db8::1",
	} {
		a, ok := Literal(in)
		if !ok || a.String() != want {
			t.Errorf("Literal(%q) = %v %v", in, a, ok)
		}
	}
	if _, ok := Literal("mx.example"); ok {
		t.Error("a name parsed as a literal")
	}
	hs, err := (&Resolver{}).MX(context.Background(), "[192.0.2.5]")
	if err != nil || len(hs) != 1 || hs[0].Addrs[0].String() != "192.0.2.5" {
		t.Fatalf("MX of a literal: %+v %v", hs, err)
	}
}

func TestHostileNames(t *testing.T) {
	r := &Resolver{Servers: []string{"127.0.0.1:1"}, Timeout: 100 * time.Millisecond}
	for _, n := range []string{"", "a..b", "a b", strings.Repeat("x", 64) + ".test", "$(reboot).test\\"} {
		if _, err := r.MX(context.Background(), n); KindOf(err) != NoHost {
			t.Errorf("MX(%q): %v, want NoHost without asking DNS", n, err)
		}
	}
}

func TestFromResolvConf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(p, []byte("# c\nsearch x\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\nnameserver 2001:db8::53\n"), 0644)
	r, err := FromResolvConf(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.53:53", "[fe80::1]:53", "[2001:db8::53]:53"}
	if !reflect.DeepEqual(r.Servers, want) {
		t.Errorf("servers %v, want %v", r.Servers, want)
	}
	r, err = FromResolvConf(filepath.Join(t.TempDir(), "missing"))
	if err != nil || !reflect.DeepEqual(r.Servers, []string{"127.0.0.1:53"}) {
		t.Errorf("missing file: %v %v", r, err)
	}
}

// truncating answers over UDP with only the TC bit set and fully over TCP, as a server
// does when the answer is too big for a datagram.
type truncating struct{ z *zone }

func (tr truncating) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if w.LocalAddr().Network() == "udp" {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Truncated = true
		w.WriteMsg(m)
		return
	}
	tr.z.ServeDNS(w, req)
}

func TestTruncatedAnswerRetriedOverTCP(t *testing.T) {
	z := newZone(t, "big.test. MX 10 mx.big.test.", "mx.big.test. A 192.0.2.44")
	h := truncating{z}
	udpStarted, tcpStarted := make(chan struct{}), make(chan struct{})
	udp := &dns.Server{Addr: "127.0.0.1:0", Net: "udp", Handler: h, NotifyStartedFunc: func() { close(udpStarted) }}
	go udp.ListenAndServe()
	<-udpStarted
	t.Cleanup(func() { udp.Shutdown() })
	port := udp.PacketConn.LocalAddr().(*net.UDPAddr).Port
	tcp := &dns.Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Net: "tcp", Handler: h, NotifyStartedFunc: func() { close(tcpStarted) }}
	errc := make(chan error, 1)
	go func() { errc <- tcp.ListenAndServe() }()
	select {
	case <-tcpStarted:
	case err := <-errc:
		t.Skipf("TCP port %d taken: %v", port, err)
	}
	t.Cleanup(func() { tcp.Shutdown() })
	r := &Resolver{Servers: []string{udp.PacketConn.LocalAddr().String()}, Timeout: 2 * time.Second}
	hs, err := r.MX(context.Background(), "big.test")
	if err != nil || len(hs) != 1 || hs[0].Addrs[0] != netip.MustParseAddr("192.0.2.44") {
		t.Fatalf("%+v %v", hs, err)
	}
}

// hostile answers every question with 60 MX records and records for names nobody
// asked about.
type hostile struct{}

func (hostile) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	q := req.Question[0]
	switch q.Qtype {
	case dns.TypeMX:
		for i := 0; i < 60; i++ {
			rr, _ := dns.NewRR(q.Name + " MX " + strconv.Itoa(i) + " mx" + strconv.Itoa(i) + ".hostile.test.")
			m.Answer = append(m.Answer, rr)
		}
	case dns.TypeA:
		for _, s := range []string{q.Name + " A 192.0.2.1", "victim.test. A 203.0.113.66"} {
			rr, _ := dns.NewRR(s)
			m.Answer = append(m.Answer, rr)
		}
	}
	w.WriteMsg(m)
}

func TestHostileAnswersAreBounded(t *testing.T) {
	started := make(chan struct{})
	srv := &dns.Server{Addr: "127.0.0.1:0", Net: "udp", Handler: hostile{}, NotifyStartedFunc: func() { close(started) }, UDPSize: 65535}
	go srv.ListenAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	r := &Resolver{Servers: []string{srv.PacketConn.LocalAddr().String()}, Timeout: 2 * time.Second}
	hs, err := r.MX(context.Background(), "hostile.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != maxMX {
		t.Errorf("%d MX hosts kept, want the cap %d", len(hs), maxMX)
	}
	for _, h := range hs {
		if len(h.Addrs) != 1 || h.Addrs[0] != netip.MustParseAddr("192.0.2.1") {
			t.Fatalf("%s: addresses %v include a record for another name", h.Name, h.Addrs)
		}
	}
}

func TestInternationalisedDomain(t *testing.T) {
	r := serve(t, newZone(t,
		"xn--bcher-kva.test. MX 10 mx.xn--bcher-kva.test.",
		"mx.xn--bcher-kva.test. A 192.0.2.50",
	))
	hs, err := r.MX(context.Background(), "Bücher.test")
	if err != nil || len(hs) != 1 || hs[0].Addrs[0] != netip.MustParseAddr("192.0.2.50") {
		t.Fatalf("%+v %v", hs, err)
	}
	if _, err := r.MX(context.Background(), "bad\xffname.test"); KindOf(err) != NoHost {
		t.Errorf("invalid UTF-8 name: %v", err)
	}
}

func TestALabels(t *testing.T) {
	// Examples from RFC 3492 section 7.1 and well-known names.
	for in, want := range map[string]string{
		"bücher.test": "xn--bcher-kva.test",
		"München.de":  "xn--mnchen-3ya.de",
		"例え.テスト":      "xn--r8jz45g.xn--zckzah",
		"ascii.test":  "ascii.test",
	} {
		got, ok := toALabels(in)
		if !ok || got != want {
			t.Errorf("toALabels(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
}

func TestAnswerToAnotherQuestionIgnored(t *testing.T) {
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Question[0].Name = "elsewhere.test."
		rr, _ := dns.NewRR("elsewhere.test. MX 10 evil.test.")
		m.Answer = append(m.Answer, rr)
		w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &dns.Server{Addr: "127.0.0.1:0", Net: "udp", Handler: h, NotifyStartedFunc: func() { close(started) }}
	go srv.ListenAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	r := &Resolver{Servers: []string{srv.PacketConn.LocalAddr().String()}, Timeout: 2 * time.Second}
	_, err := r.MX(context.Background(), "asked.test")
	if KindOf(err) != Temporary || !strings.Contains(err.Error(), "another question") {
		t.Fatalf("%v", err)
	}
}
