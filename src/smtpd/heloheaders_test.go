package smtpd

import (
	"bufio"
	"net"
	"strings"
	"testing"
)

// TestHeloPluginHeaders: headers a [helo] plugin adds belong to the HELO that made
// them: a later HELO or EHLO replaces them rather than adding copies, and STARTTLS
// forgets them with the rest of what the client said in plain text (RFC 3207).
func TestHeloPluginHeaders(t *testing.T) {
	dir := t.TempDir()
	writePlugin(t, dir, "conn", "echo 'HX-Conn: yes'\n")
	writePlugin(t, dir, "helo", `echo "HX-Helo: $SMTPHELOHOST"`+"\n")
	conf := "[connection]\nplugins/conn\n[helo]\nplugins/helo\n"

	q := &memQueue{}
	dialog(t, pluginConfig(t, q, dir, conf), "EHLO first.example\r\nEHLO second.example\r\nHELO third.example\r\n"+
		"MAIL FROM:<a@x.example>\r\nRCPT TO:<u@example.org>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n")
	qs := q.all()
	if len(qs) != 1 {
		t.Fatalf("queued %d", len(qs))
	}
	if d := qs[0].data; strings.Count(d, "X-Helo:") != 1 || !strings.Contains(d, "X-Helo: third.example\n") || strings.Count(d, "X-Conn: yes\n") != 1 {
		t.Errorf("after three HELOs the message has:\n%s", d)
	}

	st, ca := testStore(t)
	q = &memQueue{}
	addr := serve(t, func() *Config {
		cfg := pluginConfig(t, q, dir, conf)
		cfg.TLS = st.Config()
		return cfg
	})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &client{t: t, c: nc, br: bufio.NewReader(nc)}
	c.reply()
	c.cmd("EHLO plain.example", "STARTTLS")
	c.cmd("STARTTLS", "220")
	c.starttls("mx.example.org", ca)
	c.cmd("MAIL FROM:<a@x.example>", "250")
	c.cmd("RCPT TO:<u@example.org>", "250")
	c.cmd("DATA", "354")
	c.cmd("hi\r\n.", "250 ok") // HELO-style: EHLO was forgotten
	c.cmd("QUIT", "221")
	qs = q.all()
	if len(qs) != 1 {
		t.Fatalf("queued %d over TLS", len(qs))
	}
	if d := qs[0].data; strings.Contains(d, "X-Helo:") || !strings.Contains(d, "X-Conn: yes\n") {
		t.Errorf("after STARTTLS without a new EHLO the message has:\n%s", d)
	}
}
