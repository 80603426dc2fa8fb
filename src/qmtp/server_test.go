package qmtp_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/qmaint"
	"github.com/notqmail/notqmail/src/qmtp"
	"github.com/notqmail/notqmail/src/sandbox"
)

// server serves each connection on a loopback port with serve and the home's queue.
func server(t *testing.T, h *sandbox.Home, serve func(qmtp.Conn, qmtp.ServerConfig), env map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c, qmtp.ServerConfig{
					Control: control.Open(filepath.Join(h.Dir, "control")),
					Env:     func(k string) (string, bool) { v, ok := env[k]; return v, ok },
					Queue:   h.QueueConfig(),
				})
			}()
		}
	}()
	return ln.Addr().String()
}

func queued(t *testing.T, h *sandbox.Home) []qmaint.Message {
	t.Helper()
	m := &qmaint.Manager{Q: h.Queue()}
	msgs, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func content(t *testing.T, h *sandbox.Home, msg qmaint.Message) string {
	t.Helper()
	var b bytes.Buffer
	m := &qmaint.Manager{Q: h.Queue()}
	if err := m.WriteMessage(&b, msg); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestQMTPServer(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	addr := server(t, h, qmtp.ServeQMTP, map[string]string{"TCPREMOTEIP": "127.0.0.1", "TCPLOCALHOST": "hub.example", "DATABYTES": "200"})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, r := bufio.NewWriter(c), bufio.NewReader(c)
	alice := "alice@" + h.Domain

	send := func(msg, sender string, rcpts ...string) []qmtp.Response {
		t.Helper()
		resp, err := qmtp.SendQMTP(w, r, strings.NewReader(msg), int64(len(msg)), sender, rcpts)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// Several packages on one connection; each recipient answered in order.
	resp := send("Subject: one\n\nfirst\n", "someone@far.example", alice, "stranger@elsewhere.example", alice)
	if len(resp) != 3 || resp[0].Code != 'K' || resp[1].Code != 'D' || resp[2].Code != 'K' ||
		!strings.Contains(resp[1].Text, "rcpthosts") || !strings.HasPrefix(resp[0].Text, "ok ") {
		t.Fatalf("responses %+v", resp)
	}
	resp = send(strings.Repeat("x", 201), "someone@far.example", alice)
	if resp[0].Code != 'D' || !strings.Contains(resp[0].Text, "databytes") {
		t.Fatalf("too big: %+v", resp)
	}
	resp = send("Subject: two\n\nsecond\n", "", alice)
	if resp[0].Code != 'K' {
		t.Fatalf("bounce sender: %+v", resp)
	}
	// The old CRLF encoding is converted.
	crlf := "Subject: three\r\n\r\nthird\r\nbare\rcr\r\n"
	w.WriteString(fmt.Sprintf("%d:\r%s,", len(crlf)+1, crlf))
	w.Write(qmtp.AppendString(nil, "x@far.example"))
	w.Write(qmtp.Append(nil, qmtp.AppendString(nil, alice)))
	w.Flush()
	if b, err := qmtp.Read(r, 1000); err != nil || b[0] != 'K' {
		t.Fatalf("CRLF package: %q %v", b, err)
	}

	msgs := queued(t, h)
	if len(msgs) != 3 {
		t.Fatalf("%d messages queued, want 3", len(msgs))
	}
	var all string
	for _, m := range msgs {
		all += content(t, h, m)
		if len(m.Recipients) == 2 && m.Recipients[0].Addr != alice {
			t.Errorf("recipients %+v", m.Recipients)
		}
	}
	for _, want := range []string{
		"Received: from unknown (127.0.0.1)\n  by hub.example with QMTP; ",
		"Subject: one\n\nfirst\n", "Subject: two\n", "Sender: <>",
		"Subject: three\n\nthird\nbare\rcr\n",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("queue lacks %q:\n%s", want, all)
		}
	}
}

func TestQMTPRelayClient(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	// Set but empty, as tcprules' RELAYCLIENT="" makes it: relaying is allowed.
	addr := server(t, h, qmtp.ServeQMTP, map[string]string{"RELAYCLIENT": ""})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := qmtp.SendQMTP(bufio.NewWriter(c), bufio.NewReader(c), strings.NewReader("\n"), 1, "a@b.example", []string{"far@elsewhere.example"})
	if err != nil || resp[0].Code != 'K' {
		t.Fatalf("%+v %v", resp, err)
	}
	if msgs := queued(t, h); len(msgs) != 1 || msgs[0].Recipients[0].Addr != "far@elsewhere.example" {
		t.Fatalf("queued %+v", msgs)
	}
}

// raw sends bytes, closes the sending side and returns everything the server said.
func raw(t *testing.T, addr, in string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, in)
	c.(*net.TCPConn).CloseWrite()
	out, _ := io.ReadAll(c)
	return string(out)
}

func TestMalformedInput(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	qmtpAddr := server(t, h, qmtp.ServeQMTP, nil)
	qmqpAddr := server(t, h, qmtp.ServeQMQP, nil)
	rcpt := string(qmtp.Append(nil, qmtp.AppendString(nil, "alice@"+h.Domain)))
	for _, c := range []struct {
		name, addr, in, want string
	}{
		{"qmtp length not a number", qmtpAddr, "x5:hello,", "D"},
		{"qmtp no comma after message", qmtpAddr, "6:\nhello;1:a," + rcpt, "D"},
		{"qmtp message length too short", qmtpAddr, "3:\nhello,1:a," + rcpt, "D"},
		{"qmtp ends inside the message", qmtpAddr, "600:\nhello", ""},
		{"qmtp absurd length", qmtpAddr, "99999999999999999999:", "D"},
		{"qmtp sender too long", qmtpAddr, "2:\nx,99999:" + strings.Repeat("a", 99999) + "," + rcpt, "D"},
		{"qmtp recipient list holds junk", qmtpAddr, "2:\nx,1:a,5:hello,", "D"},
		{"qmtp no recipients", qmtpAddr, "2:\nx,1:a,0:,", "D"},
		{"qmtp unknown encoding", qmtpAddr, "2:Xx,1:a," + rcpt, "D"},
		{"qmqp inner runs past outer", qmqpAddr, "10:50:hello,1:a,1:b,,", "D"},
		{"qmqp no comma after package", qmqpAddr, "15:5:hello,1:a,1:b;", "D"},
		{"qmqp outer too short", qmqpAddr, "12:5:hello,1:a,1:b,,", "D"},
		{"qmqp ends early", qmqpAddr, "100:5:hello,", ""},
		{"qmqp no recipients", qmqpAddr, "12:5:hello,1:a,,", "D"},
		{"qmqp garbage", qmqpAddr, "GET / HTTP/1.0\r\n\r\n", "D"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := raw(t, c.addr, c.in)
			if c.want == "" {
				if out != "" {
					t.Errorf("answer to a client that left: %q", out)
				}
				return
			}
			b, err := qmtp.Read(bufio.NewReader(strings.NewReader(out)), 1000)
			if err != nil || len(b) == 0 || b[0] != 'D' {
				t.Errorf("answer %q (%v), want a D response", out, err)
			}
		})
	}
	if msgs := queued(t, h); len(msgs) != 0 {
		t.Errorf("malformed input queued %d messages", len(msgs))
	}
}

func TestQMQPServer(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	addr := server(t, h, qmtp.ServeQMQP, map[string]string{"TCPREMOTEIP": "127.0.0.2"})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	msg := "Subject: via qmqp\n\nbody\n"
	// QMQP does not check rcpthosts: the hub relays for its clients.
	resp, err := qmtp.SendQMQP(c, strings.NewReader(msg), int64(len(msg)), "client@null.example", []string{"alice@" + h.Domain, "far@elsewhere.example"})
	c.Close()
	if err != nil || resp.Code != 'K' {
		t.Fatalf("%+v %v", resp, err)
	}
	msgs := queued(t, h)
	if len(msgs) != 1 || len(msgs[0].Recipients) != 2 || msgs[0].Sender != "client@null.example" {
		t.Fatalf("queued %+v", msgs)
	}
	if got := content(t, h, msgs[0]); !strings.Contains(got, "Received: from unknown (127.0.0.2)\n  by unknown with QMQP; ") || !strings.Contains(got, msg) {
		t.Errorf("queued:\n%s", got)
	}
}
