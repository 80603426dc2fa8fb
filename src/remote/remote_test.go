package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/dnsresolve"
)

// relayConfig sends everything to 127.0.0.1:port through smtproutes' default route.
func relayConfig(port int) *Config {
	return &Config{
		Helo:           "client.example.test",
		ConnectTimeout: 10 * time.Second,
		Timeout:        30 * time.Second,
		Routes:         Routes{{Domain: "", Relay: "127.0.0.1", Port: port}},
		Resolver:       &dnsresolve.Resolver{},
	}
}

func deliver(t *testing.T, cfg *Config, sender string, rcpts []string, msg string) Outcome {
	t.Helper()
	out := Deliver(context.Background(), cfg, "example.test", sender, rcpts, strings.NewReader(msg))
	t.Logf("outcome: %q", out.String())
	return out
}

var queuedAs = regexp.MustCompile(`queued as ([0-9A-F]+)`)

func TestPostfixPlainDelivery(t *testing.T) {
	pf := startPostfix(t)
	cfg := relayConfig(pf.Port)
	cfg.TLSPolicies = PolicyFile{{domain: "", pol: TLSPolicy{Mode: TLSNone}}}
	msg := "Subject: plain\n\n.leading dot\n..two dots\n.\nbare CR\rhere\r\nlast line without newline"
	out := deliver(t, cfg, "sender@client.example.test", []string{"ok@example.test"}, msg)
	if out.Status != MsgOK || len(out.Recipients) != 1 || out.Recipients[0].Status != RcptOK {
		t.Fatalf("not delivered: %s", out)
	}
	if !strings.HasPrefix(out.Text, "127.0.0.1 accepted message.\nRemote host said: 250 ") {
		t.Errorf("text %q not in qmail's form", out.Text)
	}
	if !strings.Contains(out.Text, "No TLS: disabled") {
		t.Errorf("text %q does not record the missing TLS", out.Text)
	}
	m := queuedAs.FindStringSubmatch(out.Text)
	if m == nil {
		t.Fatalf("no queue id in %q", out.Text)
	}
	stored := pf.Stored(t, m[1])
	for _, want := range []string{"Subject: plain\n", "\n.leading dot\n..two dots\n.\nbare CR\nhere\nlast line without newline\n"} {
		if !strings.Contains(stored, want) {
			t.Errorf("Postfix stored\n%s\nwithout %q", stored, want)
		}
	}
}

func TestPostfixSTARTTLS(t *testing.T) {
	pf := startPostfix(t)

	// Opportunistic, without our CA: encrypted but unverified.
	cfg := relayConfig(pf.Port)
	out := deliver(t, cfg, "s@client.example.test", []string{"ok@example.test"}, "Subject: tls\n\nhello\n")
	if out.Status != MsgOK {
		t.Fatalf("not delivered: %s", out)
	}
	if !strings.Contains(out.Text, "TLS unverified (TLS1.3: ") {
		t.Errorf("text %q does not record unverified TLS", out.Text)
	}
	m := queuedAs.FindStringSubmatch(out.Text)
	if m == nil {
		t.Fatalf("no queue id in %q", out.Text)
	}
	if stored := pf.Stored(t, m[1]); !strings.Contains(stored, "with ESMTPS id") {
		t.Errorf("Postfix's Received line does not show TLS:\n%s", stored)
	}

	// With the CA: verified against the relay's address.
	cfg.RootCAs = pf.CA.Pool
	out = deliver(t, cfg, "s@client.example.test", []string{"ok@example.test"}, "Subject: tls\n\nhello\n")
	if out.Status != MsgOK || !strings.Contains(out.Text, "TLS verified (TLS1.3, 127.0.0.1).") {
		t.Fatalf("not delivered with verified TLS: %s", out)
	}

	// Requiring verification without the CA defers, and says why.
	cfg.RootCAs = nil
	cfg.TLSPolicies = PolicyFile{{domain: "example.test", pol: TLSPolicy{Mode: TLSVerify}}}
	out = deliver(t, cfg, "s@client.example.test", []string{"ok@example.test"}, "Subject: tls\n\nhello\n")
	if out.Status != MsgTemp || !strings.Contains(out.Text, "certificate does not verify") || len(out.Recipients) != 0 {
		t.Fatalf("verify policy without the CA: %s", out)
	}

	// A pinned fingerprint verifies without the CA; a wrong pin does not.
	sum := sha256.Sum256(pf.CA.Leaf.Raw)
	cfg.TLSPolicies = PolicyFile{{domain: ".test", pol: TLSPolicy{Mode: TLSVerify, Pins: [][32]byte{sum}}}}
	out = deliver(t, cfg, "s@client.example.test", []string{"ok@example.test"}, "Subject: tls\n\nhello\n")
	if out.Status != MsgOK || !strings.Contains(out.Text, "TLS verified (TLS1.3, pinned "+hex.EncodeToString(sum[:8])+")") {
		t.Fatalf("pinned: %s", out)
	}
	sum[0] ^= 1
	cfg.TLSPolicies = PolicyFile{{domain: ".test", pol: TLSPolicy{Mode: TLSVerify, Pins: [][32]byte{sum}}}}
	out = deliver(t, cfg, "s@client.example.test", []string{"ok@example.test"}, "Subject: tls\n\nhello\n")
	if out.Status != MsgTemp || !strings.Contains(out.Text, "is not pinned") {
		t.Fatalf("wrong pin: %s", out)
	}
}

func TestPostfixMixedRecipients(t *testing.T) {
	pf := startPostfix(t)
	cfg := relayConfig(pf.Port)
	out := deliver(t, cfg, "s@client.example.test",
		[]string{"a@example.test", pfTempRcpt, pfPermRcpt, "b@example.test"}, "Subject: mixed\n\nhi\n")
	want := []byte{RcptOK, RcptTemp, RcptPerm, RcptOK}
	if len(out.Recipients) != len(want) {
		t.Fatalf("recipients %s", out)
	}
	for i, w := range want {
		if out.Recipients[i].Status != w {
			t.Errorf("recipient %d: %c, want %c", i, out.Recipients[i].Status, w)
		}
	}
	if out.Status != MsgOK {
		t.Errorf("message %c, want K", out.Status)
	}
	if r := out.Recipients[1].Text; !strings.HasPrefix(r, "127.0.0.1 does not like recipient.\nRemote host said: 450 4.2.0 <temp@example.test>") {
		t.Errorf("temporary text %q", r)
	}
	if r := out.Recipients[2].Text; !strings.Contains(r, "Remote host said: 550 5.1.1 ") {
		t.Errorf("permanent text %q lacks the enhanced status code", r)
	}

	var b bytes.Buffer
	out.WriteTo(&b)
	parts := strings.Split(b.String(), "\x00")
	if len(parts) != 6 || parts[0] != "r" || parts[3] != "r" || parts[1][0] != 's' || parts[2][0] != 'h' || parts[4][0] != 'K' || parts[5] != "" {
		t.Errorf("qmail-remote output %q", b.String())
	}
}

func TestPostfixTemporaryAndPermanent(t *testing.T) {
	pf := startPostfix(t)
	cfg := relayConfig(pf.Port)
	out := deliver(t, cfg, "s@client.example.test", []string{pfTempRcpt}, "Subject: x\n\nhi\n")
	if len(out.Recipients) != 1 || out.Recipients[0].Status != RcptTemp {
		t.Fatalf("4xx recipient: %s", out)
	}
	out = deliver(t, cfg, "s@client.example.test", []string{pfPermRcpt}, "Subject: x\n\nhi\n")
	if len(out.Recipients) != 1 || out.Recipients[0].Status != RcptPerm || out.Status != MsgPerm ||
		!strings.HasPrefix(out.Text, "Giving up on 127.0.0.1.\n") {
		t.Fatalf("5xx recipient: %s", out)
	}
	// SIZE: Postfix announces its limit and a bigger message is refused before MAIL.
	big := "Subject: big\n\n" + strings.Repeat(strings.Repeat("x", 99)+"\n", pfSizeLim/100+10)
	out = deliver(t, cfg, "s@client.example.test", []string{"ok@example.test"}, big)
	if out.Status != MsgPerm || !strings.Contains(out.Text, "(#5.3.4)") || len(out.Recipients) != 0 {
		t.Fatalf("oversized message: %s", out)
	}
}

func TestPostfixSMTPUTF8(t *testing.T) {
	pf := startPostfix(t)
	cfg := relayConfig(pf.Port)
	out := deliver(t, cfg, "s@client.example.test", []string{"jürgen@example.test"}, "Subject: Grüße\n\nhallo\n")
	if out.Status != MsgOK {
		t.Fatalf("SMTPUTF8 message to Postfix: %s", out)
	}
}

func TestSinkManyMessagesAndWire(t *testing.T) {
	s := startSink(t)
	rec := startRecorder(t, "127.0.0.1:"+itoa(s.Port))
	cfg := relayConfig(0)
	cfg.Routes = Routes{{Relay: "127.0.0.1", Port: portOf(rec.Addr)}}
	const n = 200
	for i := 0; i < n; i++ {
		msg := "Subject: " + itoa(i) + "\n\n.\n.x\nline\r\n\rcr\n"
		if out := Deliver(context.Background(), cfg, "example.test", "s@c.test", []string{"r" + itoa(i) + "@example.test"}, strings.NewReader(msg)); out.Status != MsgOK {
			t.Fatalf("message %d: %s", i, out)
		}
	}
	if got := len(s.Messages(t)); got != n {
		t.Fatalf("smtp-sink captured %d messages, want %d", got, n)
	}
	wire := rec.Sent()
	if strings.Contains(strings.ReplaceAll(wire, "\r\n", ""), "\n") || strings.Contains(strings.ReplaceAll(wire, "\r\n", ""), "\r") {
		t.Error("a bare LF or CR left on the wire")
	}
	if strings.Contains(wire, "\r\n.\r\n.x") || !strings.Contains(wire, "\r\n\r\n..\r\n..x\r\nline\r\n\r\ncr\r\n.\r\n") {
		t.Errorf("data not dot-stuffed and CRLF-terminated:\n%q", wire[:min(len(wire), 600)])
	}
}

func TestSinkHELOFallbackAndNo8BITMIME(t *testing.T) {
	s := startSink(t, "-e")
	rec := startRecorder(t, "127.0.0.1:"+itoa(s.Port))
	cfg := relayConfig(portOf(rec.Addr))
	out := deliver(t, cfg, "s@c.test", []string{"r@example.test"}, "Subject: x\n\n8bit \xe9t\xe9\n")
	if out.Status != MsgOK {
		t.Fatalf("%s", out)
	}
	if w := rec.Sent(); !strings.Contains(w, "EHLO client.example.test\r\nHELO client.example.test\r\n") || strings.Contains(w, "BODY=") {
		t.Errorf("no HELO fallback, or ESMTP parameters to an SMTP server:\n%q", w)
	}
	// Non-ASCII addresses without SMTPUTF8 bounce with a reason.
	out = deliver(t, cfg, "s@c.test", []string{"jürgen@example.test"}, "Subject: x\n\nhi\n")
	if out.Status != MsgPerm || !strings.Contains(out.Text, "SMTPUTF8") || !strings.Contains(out.Text, "#5.6.7") {
		t.Fatalf("SMTPUTF8 needed: %s", out)
	}
}

func TestSinkPipeliningAndParameters(t *testing.T) {
	s := startSink(t)
	rec := startRecorder(t, "127.0.0.1:"+itoa(s.Port))
	cfg := relayConfig(portOf(rec.Addr))
	rcpts := make([]string, 300) // more than fits one buffer: no deadlock
	for i := range rcpts {
		rcpts[i] = "rcpt" + itoa(i) + "@example.test"
	}
	out := deliver(t, cfg, "", rcpts, "Subject: x\n\n8bit \xc3\xa9\n")
	if out.Status != MsgOK || len(out.Recipients) != 300 {
		t.Fatalf("%c %d", out.Status, len(out.Recipients))
	}
	w := rec.Sent()
	// smtp-sink offers no SIZE (Postfix's test covers it), but 8BITMIME.
	if !strings.Contains(w, "MAIL FROM:<> BODY=8BITMIME\r\nRCPT TO:<rcpt0@example.test>\r\n") {
		t.Errorf("MAIL parameters wrong:\n%q", w[:min(400, len(w))])
	}
}

func TestSinkRejections(t *testing.T) {
	for _, c := range []struct {
		opts   []string
		status byte
		text   string
	}{
		{[]string{"-r", "MAIL"}, MsgTemp, "Connected to 127.0.0.1 but sender was rejected.\nRemote host said: 450 4.3.0"},
		{[]string{"-f", "MAIL"}, MsgPerm, "Connected to 127.0.0.1 but sender was rejected.\nRemote host said: 500 5.3.0"},
		{[]string{"-r", "DATA"}, MsgTemp, "127.0.0.1 failed on DATA command.\n"},
		{[]string{"-f", "."}, MsgPerm, "127.0.0.1 failed after I sent the message.\n"},
		{[]string{"-r", "."}, MsgTemp, "127.0.0.1 failed after I sent the message.\n"},
		{[]string{"-q", "."}, MsgTemp, "Connected to 127.0.0.1 but connection died. Possible duplicate! (#4.4.2)\n"},
		{[]string{"-r", "CONNECT"}, MsgTemp, "Connected to 127.0.0.1 but greeting failed."},
		{[]string{"-f", "EHLO,HELO"}, MsgTemp, "Connected to 127.0.0.1 but my name was rejected."},
	} {
		s := startSink(t, c.opts...)
		out := deliver(t, relayConfig(s.Port), "s@c.test", []string{"r@example.test"}, "Subject: x\n\nhi\n")
		if out.Status != c.status || !strings.HasPrefix(out.Text, c.text) {
			t.Errorf("smtp-sink %v: got %q, want %c%q...", c.opts, out.String(), c.status, c.text)
		}
	}
}

func TestNoConnection(t *testing.T) {
	cfg := relayConfig(freePort(t)) // nothing listens there
	out := deliver(t, cfg, "s@c.test", []string{"r@example.test"}, "x\n")
	if out.Status != MsgTemp || !strings.HasPrefix(out.Text, textNoConn) {
		t.Fatalf("%s", out)
	}
}

func TestTLSRequiredButNotOffered(t *testing.T) {
	s := startSink(t)
	cfg := relayConfig(s.Port)
	cfg.TLSPolicies = PolicyFile{{domain: "example.test", pol: TLSPolicy{Mode: TLSEncrypt}}}
	out := deliver(t, cfg, "s@c.test", []string{"r@example.test"}, "x\n")
	if out.Status != MsgTemp || !strings.Contains(out.Text, "does not offer STARTTLS, which this destination requires. (#4.7.0)") {
		t.Fatalf("%s", out)
	}
	if n := len(s.Messages(t)); n != 0 {
		t.Fatalf("message sent in plain text despite the policy (%d captured)", n)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func portOf(addr string) int {
	ap := netip.MustParseAddrPort(addr)
	return int(ap.Port())
}

func TestPostfixClientCertificate(t *testing.T) {
	pf := startPostfix(t)
	ctl := writeControl(t, map[string]string{ClientCertFile: pf.CA.ClientPEM, "me": "client.example.test\n"})
	cfg, err := LoadConfig(ctl)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientCert == nil {
		t.Fatal("clientcert.pem not loaded")
	}
	cfg.Routes = Routes{{Relay: "127.0.0.1", Port: pf.Port}}
	cfg.Resolver = &dnsresolve.Resolver{}
	cfg.RootCAs = pf.CA.Pool
	out := deliver(t, cfg, "s@client.example.test", []string{"ok@example.test"}, "Subject: ccert\n\nhi\n")
	if out.Status != MsgOK {
		t.Fatalf("%s", out)
	}
	m := queuedAs.FindStringSubmatch(out.Text)
	if m == nil {
		t.Fatalf("no queue id in %q", out.Text)
	}
	stored := pf.Stored(t, m[1])
	if !strings.Contains(stored, `Client CN "client.example.test", Issuer "notqmail test CA" (verified OK)`) {
		t.Errorf("Postfix did not see our client certificate:\n%s", stored)
	}

	if _, err := LoadConfig(writeControl(t, map[string]string{ClientCertFile: "not a certificate\n"})); err == nil {
		t.Error("a broken clientcert.pem was accepted")
	}
}

func TestOutgoingIP(t *testing.T) {
	s := startSink(t)
	cfg := relayConfig(s.Port)
	// Linux routes all of 127/8 to the loopback interface, so 127.0.0.2 is a usable
	// source address while the server listens on 127.0.0.1 only.
	cfg.Sources = []SourceRule{{Domain: "example.test", V4: netip.MustParseAddr("127.0.0.2"), HasAddrs: true}}
	if out := deliver(t, cfg, "s@c.test", []string{"a@example.test"}, "Subject: src\n\nx\n"); out.Status != MsgOK {
		t.Fatalf("%s", out)
	}
	msgs := s.Messages(t)
	if len(msgs) != 1 || !strings.Contains(msgs[0], "X-Client-Addr: 127.0.0.2\n") {
		t.Fatalf("not sent from 127.0.0.2:\n%s", msgs)
	}
}
