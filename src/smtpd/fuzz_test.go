package smtpd

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzSession feeds arbitrary client input to a whole session: it must never panic,
// every reply must be a well-formed SMTP reply line, and nothing queued may hold a CR
// or recipients the relay rules refuse.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@example.org>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
		"EHLO x\r\nMAIL FROM:<> SIZE=10 BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<ü@bücher.example>\r\nDATA\r\n..\r\n.\r\n",
		"MAIL FROM:<a@b>\r\nRCPT TO:<\"x@far.example\"@example.org>\r\nRCPT TO:<@a,@b:u@example.org>\r\n",
		"RCPT TO:<u%far@example.org>\r\nDATA\r\n\r\n.\n\r\n",
		"NOOP\rQUIT\r\n", "DATA\r\n", "\r\n", "MAIL FROM:<a@[IPv6:::1]>\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		q := &memQueue{}
		cfg := testConfig(q)
		cfg.DataBytes = 4096
		out := dialog(t, cfg, in)
		if !strings.HasSuffix(out, "\r\n") {
			t.Fatalf("output does not end in CRLF: %q", out)
		}
		for _, l := range strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n") {
			if len(l) < 4 || l[0] < '2' || l[0] > '5' || (l[3] != ' ' && l[3] != '-') || strings.ContainsAny(l, "\r\n") {
				t.Fatalf("bad reply line %q", l)
			}
		}
		for _, m := range q.all() {
			if strings.Contains(m.data, "\r") {
				t.Fatalf("CR queued: %q", m.data)
			}
			for _, r := range m.rcpts {
				at := strings.LastIndexByte(r, '@')
				d := ""
				if at >= 0 {
					d = r[at+1:]
				}
				if d != "" && d != "example.org" && d != "xn--bcher-kva.example" && d != "bücher.example" && !strings.HasSuffix(strings.ToLower(d), ".sub.example.org") && !strings.EqualFold(d, "example.org") {
					t.Fatalf("relayed to %q", r)
				}
			}
		}
	})
}

// FuzzParsePath: any argument parses or is refused cleanly; an accepted address has
// no control characters, respects the length limit, and its domain is valid.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"<a@b.example>", "<>", "<@a,@b:u@c>", "<\"q\\\"x\"@d>", "u@[IPv6:::1]", "<u@[1.2.3.4]> SIZE=1", "<ü@ü.example> SMTPUTF8", "<a@b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, ok := parsePath(in)
		if !ok {
			return
		}
		if len(p.addr) > maxAddr {
			t.Fatalf("address too long: %d", len(p.addr))
		}
		for i := 0; i < len(p.addr); i++ {
			if p.addr[i] < ' ' || p.addr[i] == 0x7f {
				t.Fatalf("control character in %q", p.addr)
			}
		}
		if p.domain != "" && !validDomain(p.domain) {
			t.Fatalf("invalid domain %q accepted", p.domain)
		}
		if p.addr != "" && p.addr != p.local && p.addr != p.local+"@"+p.domain {
			t.Fatalf("address %q is not local %q @ domain %q", p.addr, p.local, p.domain)
		}
		_ = routeDomains(p.local, p.domain)
		if utf8.ValidString(p.domain) {
			asciiDomain(p.domain)
		}
	})
}

// FuzzReadData: whatever the input, the output has no CR; and when the message ends
// cleanly, stuffing the output again and adding CRLF.CRLF gives back exactly the input
// that was consumed.
func FuzzReadData(f *testing.F) {
	for _, s := range []string{".\r\n", "a\r\n.\r\n", "..\r\n.\r\n", "a\nb\r\n.\r\n", "a\rb\r\n.\r\n", "Received: x\r\n\r\n.\r\n", "x", "\r\n.\r\nNEXT"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		sr := strings.NewReader(in)
		br := bufio.NewReaderSize(sr, 16) // tiny buffer: exercise chunk edges
		var out bytes.Buffer
		res := readData(br, &out, dataLimits{maxHeader: 1 << 20}, nil)
		if bytes.IndexByte(out.Bytes(), '\r') >= 0 {
			t.Fatalf("CR in output %q", out.Bytes())
		}
		if res.err != nil || res.bare || res.tooBig || res.hops >= maxHops {
			return
		}
		// Oracle: the consumed input, line by line, with one leading dot removed.
		consumed := in[:len(in)-br.Buffered()-sr.Len()]
		lines := strings.Split(strings.TrimSuffix(consumed, ".\r\n"), "\r\n")
		var want strings.Builder
		for _, l := range lines[:len(lines)-1] {
			want.WriteString(strings.TrimPrefix(l, ".") + "\n")
		}
		if lines[len(lines)-1] != "" || want.String() != out.String() {
			t.Fatalf("consumed %q, got %q, want %q", consumed, out.String(), want.String())
		}
	})
}
