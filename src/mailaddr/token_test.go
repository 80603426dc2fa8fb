package mailaddr

import (
	"strings"
	"testing"
)

func identity(a []Token) []Token { return a }

func TestTokenize(t *testing.T) {
	toks, err := Tokenize(`To: "A \"B\"" (c (d) e) <x.y@[1.2.3.4]>, a\"b`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Token{
		{Atom, "To"}, {Colon, ""}, {Quote, `A "B"`}, {Comment, "c d e"}, {Left, ""},
		{Atom, "x"}, {Dot, ""}, {Atom, "y"}, {At, ""}, {Literal, "1.2.3.4"}, {Right, ""},
		{Comma, ""}, {Quote, `a"b`},
	}
	if len(toks) != len(want) {
		t.Fatalf("got %v", toks)
	}
	for i := range want {
		if toks[i] != want[i] {
			t.Errorf("token %d = %+v, want %+v", i, toks[i], want[i])
		}
	}
}

func TestTokenizeHighBytesBecomeQuote(t *testing.T) {
	toks, err := Tokenize("J\xc3\xbcrgen")
	if err != nil || len(toks) != 1 || toks[0].Kind != Quote {
		t.Fatalf("got %v, %v", toks, err)
	}
}

func TestTokenizeErrors(t *testing.T) {
	for _, s := range []string{`)`, `]`, `"open`, `(open`, `[open`, `(a\`, `"a\`, `((a)`} {
		if _, err := Tokenize(s); err == nil {
			t.Errorf("Tokenize(%q): no error", s)
		}
	}
}

func rewrite(t *testing.T, field string, rw Rewrite) string {
	t.Helper()
	toks, err := Tokenize(field)
	if err != nil {
		t.Fatal(err)
	}
	out, err := AddrList(toks, rw)
	if err != nil {
		t.Fatalf("AddrList(%q): %v", field, err)
	}
	return Unparse(out, 80)
}

func TestAddrListRoundTrip(t *testing.T) {
	for in, want := range map[string]string{
		"To: djb fred":                          "To: djb, fred\n",
		"To: a@b (Somebody), A Person <e@f>":    "To: a@b (Somebody), A Person <e@f>\n",
		"Cc: random group: g@h, i@j;, k@l":      "Cc: random group: g@h, i@j;, k@l\n",
		"To : x":                                "To: x\n",
		"To: Undisclosed recipients:;":          "To: Undisclosed recipients: ;\n",
		"Return-Path: <>":                       "Return-Path: <>\n",
		"From: \"Fred Q. Bloggs\" <fred@x.org>": "From: \"Fred Q. Bloggs\" <fred@x.org>\n",
		"To:":                                   "To:\n",
	} {
		if got := rewrite(t, in, identity); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
}

func TestAddrListOrderAndCallbacks(t *testing.T) {
	var seen []string
	rewrite(t, "To: a, B <b@x>, g: c, d;, e", func(a []Token) []Token {
		seen = append(seen, Unquote(a))
		return a
	})
	// qmail reads address lists from right to left.
	if got := strings.Join(seen, " "); got != "e d c b@x a" {
		t.Errorf("callbacks %q", got)
	}
}

func TestAddrListRewrites(t *testing.T) {
	got := rewrite(t, "To: joe, \"Ann\" <ann>", func(a []Token) []Token {
		return append(a, Token{Kind: At}, Token{Kind: Atom, Text: "example"}, Token{Kind: Dot}, Token{Kind: Atom, Text: "org"})
	})
	if got != "To: joe@example.org, \"Ann\" <ann@example.org>\n" {
		t.Errorf("got %q", got)
	}
}

func TestAddrListErrors(t *testing.T) {
	for _, s := range []string{"To: a:b", "To: a;; b:", "To: b>"} {
		toks, err := Tokenize(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := AddrList(toks, identity); err == nil {
			t.Errorf("AddrList(%q): no error", s)
		}
	}
}

func TestUnparseFolds(t *testing.T) {
	var parts []string
	for i := 0; i < 8; i++ {
		parts = append(parts, "someone"+strings.Repeat("x", i)+"@example.com")
	}
	got := rewrite(t, "To: "+strings.Join(parts, ", "), identity)
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) < 2 {
		t.Fatalf("not folded: %q", got)
	}
	for i, l := range lines {
		if len(l) > 80 {
			t.Errorf("line %d too long (%d): %q", i, len(l), l)
		}
		if i > 0 && !strings.HasPrefix(l, "  ") {
			t.Errorf("continuation line %d does not start with white space: %q", i, l)
		}
	}
	// Refolding gives the same addresses.
	toks, _ := Tokenize(got)
	var n int
	AddrList(toks, func(a []Token) []Token { n++; return a })
	if n != len(parts) {
		t.Errorf("refolded field has %d addresses, want %d", n, len(parts))
	}
}

func TestUnparseEscapes(t *testing.T) {
	got := Unparse([]Token{{Atom, "X"}, {Colon, ""}, {Quote, "a\"b\\c\nd"}, {Comment, "(x)"}}, 80)
	if got != "X: \"a\\\"b\\\\c\\\nd\" (\\(x\\))\n" {
		t.Errorf("got %q", got)
	}
}

func TestQuoteAddr(t *testing.T) {
	for in, want := range map[string]string{
		"":              "",
		"joe":           "joe",
		"joe@x":         "joe@x",
		"a b@x":         `"a b"@x`,
		".joe@x":        `".joe"@x`,
		"a..b":          `"a..b"`,
		`q"t@x@y`:       `"q\"t@x"@y`,
		"first.last@x":  "first.last@x",
		"user+tag@host": "user+tag@host",
	} {
		if got := QuoteAddr(in); got != want {
			t.Errorf("QuoteAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
