package remote

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/dnsresolve"
	"github.com/notqmail/notqmail/src/qmtp"
)

// qmtpPeer answers one QMTP package with the given responses, and reports what it got.
func qmtpPeer(t *testing.T, responses ...string) (port int, got chan []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got = make(chan []string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		r := bufio.NewReader(c)
		msg, err1 := qmtp.Read(r, 1<<20)
		sender, err2 := qmtp.Read(r, 1<<10)
		list, err3 := qmtp.Read(r, 1<<10)
		if err1 != nil || err2 != nil || err3 != nil {
			got <- nil
			return
		}
		got <- []string{string(msg), string(sender), string(list)}
		for _, resp := range responses {
			c.Write(qmtp.AppendString(nil, resp))
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, got
}

var loopback = staticResolver{hosts: []dnsresolve.Host{{Name: "localhost", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}}}

func TestQMTPRouteReports(t *testing.T) {
	port, got := qmtpPeer(t, "Kok 1 qp 2", "Dno such user", "Ztry later")
	cfg := &Config{
		Resolver:   loopback,
		QMTPRoutes: qmtp.Routes{{Domain: "example.net", Relay: "127.0.0.1", Port: port}},
	}
	out := Deliver(context.Background(), cfg, "example.net", "s@example.org",
		[]string{"a@example.net", "b@example.net", "c@example.net"}, strings.NewReader("Subject: x\n\nbody\n"))
	pkg := <-got
	if pkg == nil || pkg[0] != "\nSubject: x\n\nbody\n" || pkg[1] != "s@example.org" ||
		pkg[2] != "13:a@example.net,13:b@example.net,13:c@example.net," {
		t.Fatalf("package %q", pkg)
	}
	if out.Status != MsgOK || len(out.Recipients) != 3 || out.Recipients[0].Status != RcptOK ||
		out.Recipients[1].Status != RcptPerm || out.Recipients[2].Status != RcptTemp ||
		!strings.Contains(out.Recipients[1].Text, "127.0.0.1 said: no such user") {
		t.Fatalf("outcome %+v", out)
	}
}

func TestQMTPConnectionDiesMidway(t *testing.T) {
	port, _ := qmtpPeer(t, "Kok") // one response for two recipients, then it hangs up
	cfg := &Config{Resolver: loopback, QMTPRoutes: qmtp.Routes{{Domain: "", Relay: "127.0.0.1", Port: port}}}
	out := Deliver(context.Background(), cfg, "example.net", "s@example.org",
		[]string{"a@example.net", "b@example.net"}, strings.NewReader("x\n"))
	if out.Status != MsgOK || out.Recipients[0].Status != RcptOK || out.Recipients[1].Status != RcptTemp {
		t.Fatalf("outcome %+v", out)
	}
}

func TestQMTPNoConnection(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := &Config{Resolver: loopback, QMTPRoutes: qmtp.Routes{{Domain: "example.net", Relay: "127.0.0.1", Port: port}}}
	out := Deliver(context.Background(), cfg, "example.net", "s@example.org", []string{"a@example.net"}, strings.NewReader("x\n"))
	if out.Status != MsgTemp || !strings.Contains(out.Text, "QMTP connection") {
		t.Fatalf("outcome %+v", out)
	}
}

func TestMXPSNeedsOpportunisticTLS(t *testing.T) {
	h := dnsresolve.Host{Name: "mx.example.net", Pref: 12801, Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}
	cfg := &Config{}
	// A destination that demands TLS never goes by QMTP, which has none.
	if _, ok := cfg.tryMXPS(context.Background(), "example.net", h, TLSPolicy{Mode: TLSVerify}, "s", []string{"r"}, nil); ok {
		t.Error("QMTP used where tlsdestinations demands TLS")
	}
	h.Pref = 10
	if _, ok := cfg.tryMXPS(context.Background(), "example.net", h, TLSPolicy{}, "s", []string{"r"}, nil); ok {
		t.Error("QMTP used for an MX without the MXPS distance")
	}
}
