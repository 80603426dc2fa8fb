package mailaddr

import "testing"

// The cases qmail-send meets in bounces (quote.c's rules).
func TestQuoteAddrQmailCases(t *testing.T) {
	cases := [][2]string{
		{"joe@example.org", "joe@example.org"},
		{"joe smith@example.org", `"joe smith"@example.org`},
		{`a"b@x`, `"a\"b"@x`},
		{".joe@x", `".joe"@x`},
		{"jo..e@x", `"jo..e"@x`},
		{"joe.@x", `"joe."@x`},
		{"a@b@x", `"a@b"@x`},
		{"", ""},
		{"nohost", "nohost"},
	}
	for _, c := range cases {
		if got := QuoteAddr(c[0]); got != c[1] {
			t.Errorf("QuoteAddr(%q) = %q, want %q", c[0], got, c[1])
		}
	}
	if QuoteLocal("MAILER-DAEMON") != "MAILER-DAEMON" {
		t.Error("MAILER-DAEMON quoted")
	}
}
