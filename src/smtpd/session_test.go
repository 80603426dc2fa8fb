package smtpd

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"
)

func TestBasicTransaction(t *testing.T) {
	q := &memQueue{}
	cfg := testConfig(q)
	var log bytes.Buffer
	cfg.Log = &log
	out := dialog(t, cfg, "HELO client.example.net\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"+
		"Subject: hi\r\n\r\n..dot\r\nline\r\n.\r\nQUIT\r\n")
	want := []string{
		"220 mx.example.org ESMTP",
		"250 mx.example.org",
		"250 ok",
		"250 ok",
		"354 go ahead",
		"250 ok 1795248309 qp 4242",
		"221 mx.example.org",
	}
	if got := replies(out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("replies:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	qs := q.all()
	if len(qs) != 1 {
		t.Fatalf("queued %d messages", len(qs))
	}
	wantData := "Received: from client.example.net (192.0.2.7)\n  by mx.example.org with SMTP; 21 Nov 2026 08:05:09 -0000\n" +
		"Subject: hi\n\n.dot\nline\n"
	if qs[0].data != wantData {
		t.Errorf("data %q\nwant %q", qs[0].data, wantData)
	}
	if qs[0].from != "a@example.net" || strings.Join(qs[0].rcpts, ",") != "b@example.org" {
		t.Errorf("envelope %q %q", qs[0].from, qs[0].rcpts)
	}
	l := log.String()
	mustContain(t, l, `message remote=192.0.2.7 from="a@example.net" rcpts=["b@example.org"]`, `result="250 ok 1795248309 qp 4242"`,
		`session remote=192.0.2.7`, `messages=1 accepted=1 end="quit"`)
	if n := strings.Count(l, "\n"); n != 2 {
		t.Errorf("want 2 log lines, got %d:\n%s", n, l)
	}
}

func TestEHLOAndEnhancedCodes(t *testing.T) {
	q := &memQueue{}
	cfg := testConfig(q)
	cfg.DataBytes = 1000
	out := dialog(t, cfg, "EHLO c\r\nMAIL FROM:<a@example.net> SIZE=2000\r\nMAIL FROM:<a@example.net> SIZE=20 BODY=8BITMIME\r\nRCPT TO:<b@elsewhere.example>\r\nQUIT\r\n")
	mustContain(t, out,
		"250-mx.example.org\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 1000\r\n250-ENHANCEDSTATUSCODES\r\n250 SMTPUTF8\r\n",
		"552 5.3.4 sorry, that message size exceeds my databytes limit\r\n",
		"250 2.1.0 ok\r\n",
		"553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts\r\n",
		"221 2.0.0 mx.example.org\r\n")
}

func TestHELOKeepsQmailTexts(t *testing.T) {
	out := dialog(t, testConfig(&memQueue{}), "HELO c\r\nRCPT TO:<b@example.org>\r\nMAIL FROM:<a@b>\r\nDATA\r\nRCPT TO:<x@nowhere.example>\r\nFOO\r\n")
	mustContain(t, out,
		"503 MAIL first (#5.5.1)\r\n",
		"503 RCPT first (#5.5.1)\r\n",
		"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n",
		"502 unimplemented (#5.5.1)\r\n")
}

func TestOtherCommands(t *testing.T) {
	out := dialog(t, testConfig(&memQueue{}), "NOOP\r\nVRFY x\r\nHELP\r\nRSET\r\nMAIL FROM:<>\r\nMAIL FROM:<>\r\nRSET\r\nMAIL FROM:<>\r\nquit\r\n")
	want := []string{"220 mx.example.org ESMTP", "250 ok", "252 send some mail, i'll try my best",
		"214 notqmail home page: https://notqmail.org", "250 flushed", "250 ok",
		"503 nested MAIL command (#5.5.1)", "250 flushed", "250 ok", "221 mx.example.org"}
	if got := replies(out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("replies:\n%s", out)
	}
}

func TestDataEdgeCases(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		{"empty", ".\r\n", ""},
		{"dot-stuffing", "..\r\n...x\r\n.y\r\n.\r\n", ".\n..x\ny\n"},
		{"dot inside line", "a.\r\n b .\r\n.\r\n", "a.\n b .\n"},
		{"no header", "body only\r\n.\r\n", "body only\n"},
		{"long line", strings.Repeat("x", 100000) + "\r\n.\r\n", strings.Repeat("x", 100000) + "\n"},
		{"crlf at buffer edge", strings.Repeat("y", readBufferSize-1) + "\r\n.\r\n", strings.Repeat("y", readBufferSize-1) + "\n"},
		{"8bit", "Subject: caf\xc3\xa9\r\n\r\n\xff\xfe\r\n.\r\n", "Subject: caf\xc3\xa9\n\n\xff\xfe\n"},
	}
	for _, c := range cases {
		q := &memQueue{}
		out := dialog(t, testConfig(q), "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"+c.body+"QUIT\r\n")
		qs := q.all()
		if len(qs) != 1 {
			t.Errorf("%s: not queued:\n%s", c.name, out)
			continue
		}
		_, got, _ := strings.Cut(qs[0].data, " -0000\n")
		if got != c.want {
			t.Errorf("%s: queued %q, want %q", c.name, got, c.want)
		}
	}
}

func TestHopLimit(t *testing.T) {
	for _, n := range []int{99, 100} {
		q := &memQueue{}
		hdr := strings.Repeat("Received: x\r\n", n/2) + strings.Repeat("delivered-TO: y\r\n", n-n/2)
		out := dialog(t, testConfig(q), "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"+hdr+"\r\nReceived: in body\r\n.\r\nQUIT\r\n")
		looping := strings.Contains(out, "554 too many hops, this message is looping (#5.4.6)\r\n")
		if looping != (n >= 100) || len(q.all()) != map[bool]int{true: 0, false: 1}[looping] {
			t.Errorf("%d hops: looping=%v queued=%d\n%s", n, looping, len(q.all()), out)
		}
	}
}

func TestDataBytes(t *testing.T) {
	q := &memQueue{}
	cfg := testConfig(q)
	cfg.DataBytes = 50
	body := strings.Repeat("0123456789\r\n", 10)
	out := dialog(t, cfg, "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"+body+".\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nsmall\r\n.\r\nQUIT\r\n")
	mustContain(t, out, "552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n", "250 ok 1795248309 qp 4242\r\n")
	if qs := q.all(); len(qs) != 1 || !strings.HasSuffix(qs[0].data, "\nsmall\n") {
		t.Errorf("queued %+v", qs)
	}
	if q.aborted != 1 {
		t.Errorf("aborted %d, want 1", q.aborted)
	}
}

func TestQueueErrors(t *testing.T) {
	for _, c := range []struct {
		code   int
		custom string
		want   string
	}{
		{53, "", "451 qq write error or disk full (#4.3.0)\r\n"},
		{31, "", "554 mail server permanently rejected message (#5.3.0)\r\n"},
		{82, "Dvirus found: Eicar (#5.7.1)", "554 virus found: Eicar (#5.7.1)\r\n"},
		{82, "Zgreylisted, try later\r\n250 ok", "451 greylisted, try later (#4.3.0)\r\n"},
	} {
		q := &memQueue{failCode: c.code, custom: c.custom}
		out := dialog(t, testConfig(q), "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n")
		mustContain(t, out, c.want)
		if strings.Contains(out, "250 ok\r\n250 ok\r\n354") == false || strings.Contains(out, "250 ok 1") {
			t.Errorf("exit %d: unexpected dialog\n%s", c.code, out)
		}
	}
}

func TestBareCRLF(t *testing.T) {
	pre := "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
	smuggle := "MAIL FROM:<evil@x.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nevil\r\n.\r\n"
	for name, in := range map[string]string{
		"bare LF in command":      "HELO x\nMAIL FROM:<a@b>\r\n",
		"bare CR in command":      "HELO x\rMAIL FROM:<a@b>\r\n",
		"CR CR LF in command":     "HELO x\r\r\n",
		"LF CR in command":        "NOOP\n\r\n",
		"bare LF end of data":     pre + "a\r\n\n.\n" + smuggle,
		"LF dot CRLF":             pre + "a\n.\r\n" + smuggle,
		"CRLF dot LF":             pre + "a\r\n.\n" + smuggle,
		"CR dot CR":               pre + "a\r.\r" + smuggle,
		"CRLF dot CR":             pre + "a\r\n.\r" + smuggle,
		"CR dot CRLF":             pre + "a\r.\r\n" + smuggle,
		"bare CR in data":         pre + "a\rb\r\n.\r\n",
		"bare LF in header":       pre + "Subject: x\nBcc: y\r\n\r\n.\r\n",
		"CR CR LF in data":        pre + "a\r\r\n.\r\n",
		"bare LF after dot-stuff": pre + "..\n.\r\n",
		"NUL and LF":              pre + "\x00\n.\r\n",
	} {
		q := &memQueue{}
		out := dialog(t, testConfig(q), in+"QUIT\r\n")
		if len(q.all()) != 0 {
			t.Errorf("%s: a message was queued:\n%s", name, out)
		}
		if !strings.Contains(out, "bare LF or CR") || strings.Contains(out, "221 ") {
			t.Errorf("%s: not refused with hang-up:\n%s", name, out)
		}
	}
}

func TestLongCommandLine(t *testing.T) {
	out := dialog(t, testConfig(&memQueue{}), "NOOP "+strings.Repeat("a", 3*MaxCommandLine)+"\r\nNOOP\r\n")
	want := []string{"220 mx.example.org ESMTP", "500 line too long (#5.5.2)", "250 ok"}
	if got := replies(out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("replies:\n%s", out)
	}
}

func TestTooManyErrors(t *testing.T) {
	out := dialog(t, testConfig(&memQueue{}), strings.Repeat("BOGUS\r\n", maxErrors+10))
	if n := strings.Count(out, "502 "); n != maxErrors {
		t.Errorf("%d 502 replies", n)
	}
	mustContain(t, out, "421 too many errors")
}

func TestBadMailFromAndBadRcptTo(t *testing.T) {
	cfg := testConfig(&memQueue{})
	cfg.BadMailFrom = []string{"spam@bad.example", "@worse.example"}
	cfg.BadRcptTo = []string{"nobody@example.org", "@sub.sub.example.org"}
	out := dialog(t, cfg, "MAIL FROM:<SPAM@Bad.Example>\r\nRCPT TO:<b@example.org>\r\nRSET\r\n"+
		"MAIL FROM:<x@WORSE.example>\r\nRCPT TO:<b@example.org>\r\nRSET\r\n"+
		"MAIL FROM:<ok@good.example>\r\nRCPT TO:<NOBODY@example.org>\r\nRCPT TO:<a@sub.sub.example.org>\r\nRCPT TO:<someone@example.org>\r\n")
	if n := strings.Count(out, "553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)"); n != 2 {
		t.Errorf("badmailfrom hits %d:\n%s", n, out)
	}
	if n := strings.Count(out, "553 sorry, your envelope recipient is in my badrcptto list (#5.7.1)"); n != 2 {
		t.Errorf("badrcptto hits %d:\n%s", n, out)
	}
	if !strings.HasSuffix(out, "250 ok\r\n") {
		t.Errorf("good recipient refused:\n%s", out)
	}
}

func TestRelayClient(t *testing.T) {
	q := &memQueue{}
	cfg := testConfig(q)
	cfg.RelaySet, cfg.RelayClient = true, "-relayed"
	out := dialog(t, cfg, "MAIL FROM:<a@x.example>\r\nRCPT TO:<u@far.example>\r\nRCPT TO:<\"x%y\"@[10.1.2.3]>\r\nDATA\r\nx\r\n.\r\n")
	mustContain(t, out, "250 ok 1795248309")
	if qs := q.all(); len(qs) != 1 || strings.Join(qs[0].rcpts, " ") != "u@far.example-relayed x%y@[10.1.2.3]-relayed" {
		t.Errorf("queued %+v", qs)
	}
}

func TestTooManyRecipients(t *testing.T) {
	cfg := testConfig(&memQueue{})
	cfg.MaxRcpts = 3
	out := dialog(t, cfg, "MAIL FROM:<>\r\n"+strings.Repeat("RCPT TO:<a@example.org>\r\n", 5))
	if strings.Count(out, "250 ok") != 4 || strings.Count(out, "452 too many recipients (#4.5.3)") != 2 {
		t.Errorf("%s", out)
	}
}

func TestRejectedRecipientsBounded(t *testing.T) {
	cfg := testConfig(&memQueue{})
	var log bytes.Buffer
	cfg.Log = &log
	dialog(t, cfg, "MAIL FROM:<a@x.example>\r\n"+strings.Repeat("RCPT TO:<u@far.example>\r\n", 5000)+"QUIT\r\n")
	l := log.String()
	if strings.Count(l, `"u@far.example"`) != maxLoggedRejects || !strings.Contains(l, `...4900 more`) {
		t.Errorf("log line not bounded: %d bytes", len(l))
	}
	mustContain(t, l, `result="abandoned"`)
}

// TestClientNeverReads: a client that pipelines commands but never reads replies is
// cut off by the timeout on writes, not left holding the session forever.
func TestClientNeverReads(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	cfg := testConfig(&memQueue{})
	cfg.Timeout = 200 * time.Millisecond
	go func() {
		for {
			if _, err := client.Write([]byte(strings.Repeat("NOOP\r\n", 1000))); err != nil {
				return
			}
		}
	}()
	Serve(server, cfg) // returns once the server gives up writing
	server.Close()
}
