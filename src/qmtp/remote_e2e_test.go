package qmtp_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/sandbox"
)

// One sandbox's qmail-remote delivers 100 messages by QMTP (control/qmtproutes) to
// another sandbox's qmail-qmtpd, which delivers them all. The first 40 are queued
// before the sender's qmail-send starts, as after a restart: it then runs as many
// deliveries at once as concurrencyremote allows.
func TestRemoteDeliversByQMTP(t *testing.T) {
	dst := sandbox.New(t, sandbox.Options{Domain: "qmtp.example"})
	src := sandbox.New(t, sandbox.Options{Domain: "sender.example"})
	log := &sandbox.Log{}
	addr := freePort(t)
	// qmail-send runs up to concurrencyremote (20) deliveries to the one host at
	// once. Past -i connections from one address (default 10) qmail-qmtpd refuses
	// them, and each refused message is deferred ("connection died") for 400 s. With
	// -i as large as -c none is refused: extra connections wait for a free slot in the
	// kernel's backlog, as under tcpserver, which has no per-address limit.
	daemon(t, dst, log, "qmail-qmtpd", "-l", addr, "-c", "40", "-i", "40", "-H", "qmtp.example")
	daemon(t, dst, log, "qmail-start", "./Maildir/")
	waitListening(t, addr, log)
	host, port, _ := strings.Cut(addr, ":")
	route := ":" + host + ":" + port + "\n"
	writeControl(t, src, "qmtproutes", "qmtp.example"+route+"elsewhere.example"+route)

	const n, backlog = 100, 40
	for i := 0; i < n; i++ {
		if i == backlog {
			daemon(t, src, log, "qmail-start", "./Maildir/")
		}
		rcpts := []string{"alice@qmtp.example"}
		if i == 0 {
			// Not in the destination's rcpthosts: refused, and bounced to the sender.
			rcpts = append(rcpts, "stranger@elsewhere.example")
		}
		msg := fmt.Sprintf("From: alice@sender.example\nSubject: qmtp %d\n\nmessage %d\n.\n", i, i)
		if err := src.Submit(strings.NewReader(msg), "alice@sender.example", rcpts); err != nil {
			t.Fatal(err)
		}
	}
	msgs := dst.WaitMessages(t, "alice", n)
	seen := map[string]bool{}
	for _, m := range msgs {
		s := string(m.Data)
		if !strings.Contains(s, "\n  by qmtp.example with QMTP; ") || !strings.Contains(s, "\n.\n") {
			t.Errorf("delivered:\n%s", s)
		}
		if i := strings.Index(s, "Subject: qmtp "); i >= 0 {
			seen[strings.SplitN(s[i:], "\n", 2)[0]] = true
		}
	}
	if len(msgs) != n || len(seen) != n {
		t.Errorf("%d messages, %d distinct, want %d", len(msgs), len(seen), n)
	}
	if !strings.Contains(log.String(), "accepted_message_by_QMTP") {
		t.Errorf("qmail-send's log does not show QMTP deliveries:\n%.2000s", log.String())
	}
	bounce := string(src.WaitMessages(t, "alice", 1)[0].Data)
	for _, want := range []string{"<stranger@elsewhere.example>:\n", "said: sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", "Subject: qmtp 0\n"} {
		if !strings.Contains(bounce, want) {
			t.Errorf("bounce lacks %q:\n%s", want, bounce)
		}
	}
}
