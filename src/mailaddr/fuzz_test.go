package mailaddr

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzAddrList checks that any input either fails cleanly or round-trips: the unparsed
// text tokenizes back to the same tokens and the same addresses.
func FuzzAddrList(f *testing.F) {
	for _, s := range []string{
		"To: a@b (Somebody), A Person <e@f>,\n random group: g@h, i@j;, k@l",
		"From: \"J. Random\" <jr@[10.0.0.1]>",
		"Cc: djb fred",
		"To: <@route,@x:user@host>",
		"Return-Path: <>",
		"To: \"unterminated",
		"To: a:b;c<d>e",
		"To: (nested (comment)) x\\@y@z",
		"To: \x00\xff@\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		toks, err := Tokenize(s)
		if err != nil {
			return
		}
		var addrs []string
		out, err := AddrList(toks, func(a []Token) []Token {
			addrs = append(addrs, Unquote(a))
			return a
		})
		if err != nil {
			return
		}
		text := Unparse(out, 80)
		if !strings.HasSuffix(text, "\n") {
			t.Fatalf("Unparse(%q) = %q: no final newline", s, text)
		}
		again, err := Tokenize(text)
		if err != nil {
			t.Fatalf("Unparse(%q) = %q does not tokenize: %v", s, text, err)
		}
		if !reflect.DeepEqual(normalize(again), normalize(out)) {
			t.Fatalf("round trip of %q changed tokens:\n%v\n%v", s, out, again)
		}
		var addrs2 []string
		if _, err := AddrList(again, func(a []Token) []Token {
			addrs2 = append(addrs2, Unquote(a))
			return a
		}); err != nil {
			t.Fatalf("re-parsing %q: %v", text, err)
		}
		if !reflect.DeepEqual(addrs, addrs2) {
			t.Fatalf("addresses of %q changed on round trip: %q -> %q", s, addrs, addrs2)
		}
	})
}

// normalize makes empty token lists compare equal to nil ones.
func normalize(ts []Token) []Token {
	if len(ts) == 0 {
		return nil
	}
	return ts
}
