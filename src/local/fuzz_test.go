package local

import (
	"strings"
	"testing"
)

// FuzzHeaderLines checks that any sender and recipient give one well-formed header
// line each: no newline inside, the right prefix and ending, and an unquoted sender
// kept as it is.
func FuzzHeaderLines(f *testing.F) {
	for _, s := range []string{"", "a@b", "a b@c", "\n@\n", "x@y@z", "\"q\"@h", "#@[]", ".@.", "a..b"} {
		f.Add(s, "joe", "example.org")
	}
	f.Fuzz(func(t *testing.T, sender, local, host string) {
		rp := ReturnPath(sender)
		if !strings.HasPrefix(rp, "Return-Path: <") || !strings.HasSuffix(rp, ">\n") || strings.Count(rp, "\n") != 1 {
			t.Fatalf("ReturnPath(%q) = %q", sender, rp)
		}
		// Quoting is reversible: unquoting the local part gives the sender back.
		if q := QuoteAddress(sender); q != sender {
			at := strings.LastIndexByte(sender, '@')
			domain := ""
			if at >= 0 {
				domain = sender[at:]
			}
			body, ok := strings.CutSuffix(q, domain)
			if !ok || len(body) < 2 || body[0] != '"' || body[len(body)-1] != '"' {
				t.Fatalf("QuoteAddress(%q) = %q", sender, q)
			}
			var un []byte
			for i := 1; i < len(body)-1; i++ {
				if body[i] == '\\' {
					i++
				}
				un = append(un, body[i])
			}
			if string(un)+domain != sender {
				t.Fatalf("QuoteAddress(%q) = %q does not unquote back", sender, q)
			}
		}
		dt := DeliveredTo(local, host)
		if !strings.HasPrefix(dt, "Delivered-To: ") || strings.Count(dt, "\n") != 1 || !strings.HasSuffix(dt, "\n") {
			t.Fatalf("DeliveredTo(%q, %q) = %q", local, host, dt)
		}
	})
}
