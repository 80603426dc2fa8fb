package smtpd

import (
	"net"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/testpeer"
)

// TestSwaksPipelining: swaks sends MAIL, RCPTs and DATA in one PIPELINING group; the
// replies come in order and only the good recipient is queued.
func TestSwaksPipelining(t *testing.T) {
	sw := testpeer.Need(t, "swaks")
	q := &memQueue{}
	addr := serve(t, func() *Config { return testConfig(q) })
	out, err := swaks(t, sw, addr, "--pipeline", "--from", "a@x.example", "--to", "b@example.org,c@far.example,d@a.sub.example.org", "--body", "pipelined")
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	mustContain(t, out, "250-PIPELINING", "553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts", "250 2.0.0 ok 1795248309 qp 4242")
	qs := q.all()
	if len(qs) != 1 || strings.Join(qs[0].rcpts, ",") != "b@example.org,d@a.sub.example.org" {
		t.Fatalf("queued %+v", qs)
	}
}

// TestSmtplibExtensions: Python's smtplib uses SIZE, BODY=8BITMIME and SMTPUTF8.
func TestSmtplibExtensions(t *testing.T) {
	py := testpeer.Need(t, "python3")
	q := &memQueue{}
	addr := serve(t, func() *Config {
		c := testConfig(q)
		c.DataBytes = 2000
		return c
	})
	out := python(t, py, addr, `
import os, smtplib
s = smtplib.SMTP(os.environ["HOST"], int(os.environ["PORT"]))
s.ehlo("py.example")
for ext in ("size", "8bitmime", "pipelining", "enhancedstatuscodes", "smtputf8"):
    print(ext, s.has_extn(ext), s.esmtp_features.get(ext, ""))
body = "Subject: caf\u00e9\r\n\r\n" + "\u00e9t\u00e9\r\n"
s.sendmail("a@x.example", ["b@example.org"], body.encode("utf-8"), mail_options=["BODY=8BITMIME"])
try:
    s.sendmail("a@x.example", ["b@example.org"], "x" * 3000)
except smtplib.SMTPSenderRefused as e:
    print("too big:", e.smtp_code, e.smtp_error.decode())
s.sendmail("j\u00f6rg@x.example", ["\u00fc@b\u00fccher.example"], "Subject: eai\r\n\r\nhi\r\n", mail_options=["SMTPUTF8"])
try:
    s.sendmail("a@x.example", ["\u00fc@example.org"], "x")
except smtplib.SMTPRecipientsRefused as e:
    print("refused:", list(e.recipients.values())[0][0])
except UnicodeEncodeError:
    print("refused: client")
s.quit()
`)
	mustContain(t, out, "size True 2000", "8bitmime True", "pipelining True", "enhancedstatuscodes True", "smtputf8 True",
		"too big: 552 5.3.4 sorry, that message size exceeds my databytes limit")
	qs := q.all()
	if len(qs) != 2 {
		t.Fatalf("queued %d:\n%s", len(qs), out)
	}
	if !strings.HasSuffix(qs[0].data, "Subject: café\n\nété\n") {
		t.Errorf("8-bit body %q", qs[0].data)
	}
	if qs[1].from != "jörg@x.example" || qs[1].rcpts[0] != "ü@bücher.example" || !strings.Contains(qs[1].data, "with UTF8SMTP;") {
		t.Errorf("SMTPUTF8 message %+v", qs[1])
	}
}

// TestTCPServerSmuggling: a raw client tries the SMTP smuggling variants under
// tcpserver; each is refused, the connection is closed, and nothing is queued.
func TestTCPServerSmuggling(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	addr := startTCPServer(t, h)
	pre := "EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@sandbox.example>\r\nDATA\r\n"
	smuggled := "MAIL FROM:<admin@sandbox.example>\r\nRCPT TO:<alice@sandbox.example>\r\nDATA\r\nSubject: smuggled\r\n\r\n.\r\n"
	for _, end := range []string{"\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r", "\r\n.\r\r\n"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(pre + "Subject: first\r\n\r\nbody" + end + smuggled + "QUIT\r\n"))
		var all []byte
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				break
			}
		}
		c.Close()
		if strings.Contains(string(all), "250 2.0.0 ok") {
			t.Errorf("ending %q: a message was accepted:\n%s", end, all)
		}
	}
	if n := len(queuedMessages(t, h)); n != 0 {
		t.Errorf("%d messages queued", n)
	}
}

// TestListenerIPv6 serves on [::1] and checks the client's address reaches the
// Received line, and that an IPv6 literal naming this host is local.
func TestListenerIPv6(t *testing.T) {
	py := testpeer.Need(t, "python3")
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback:", err)
	} else {
		ln.Close()
	}
	h := sandbox.New(t, sandbox.Options{})
	ln, _ := net.Listen("tcp6", "[::1]:0")
	addr := ln.Addr().String()
	ln.Close()
	startListenerAt(t, h, addr)
	python(t, py, addr, `
import os, smtplib
s = smtplib.SMTP(os.environ["HOST"], int(os.environ["PORT"]))
s.sendmail("a@example.net", ["alice@[IPv6:::1]"], "Subject: v6\r\n\r\nhi\r\n")
s.quit()
`)
	msgs := queuedMessages(t, h)
	if len(msgs) != 1 {
		t.Fatalf("queued %d", len(msgs))
	}
	mustContain(t, msgs[0].data, "Received: from unknown (HELO ")
	mustContain(t, msgs[0].data, "(::1)\n  by ")
	if msgs[0].rcpts[0] != "alice@sandbox.example" {
		t.Errorf("recipient %q, want the localiphost form", msgs[0].rcpts[0])
	}
}
