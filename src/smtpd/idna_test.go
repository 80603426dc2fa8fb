package smtpd

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestASCIIDomain(t *testing.T) {
	// Expected A-labels from RFC 3492 section 7.1 and well-known registrations.
	cases := map[string]string{
		"Example.COM":      "example.com",
		"bücher.example":   "xn--bcher-kva.example",
		"BÜCHER.example":   "xn--bcher-kva.example",
		"münchen.de":       "xn--mnchen-3ya.de",
		"例え.テスト":           "xn--r8jz45g.xn--zckzah",
		"ñandú.example":    "xn--and-6ma2c.example",
		"пример.испытание": "xn--e1afmkfd.xn--80akhbyknj4f",
	}
	for in, want := range cases {
		got, err := asciiDomain(in)
		if err != nil || got != want {
			t.Errorf("asciiDomain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range cases {
		if u, ok := unicodeDomain(want); strings.ToLower(in) != u || ok != !isASCII(in) {
			t.Errorf("unicodeDomain(%q) = %q, %v; want %q", want, u, ok, strings.ToLower(in))
		}
	}
	for _, bad := range []string{"xn--99999999999999.example", "xn--ab!c.example", "xn--" + strings.Repeat("z", 70)} {
		if _, ok := unicodeDomain(bad); ok {
			t.Errorf("unicodeDomain(%q) accepted", bad)
		}
	}
	if _, err := asciiDomain("a\xffb.example"); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
}

// FuzzPunycode: decoding an encoded label gives the label back.
func FuzzPunycode(f *testing.F) {
	for _, s := range []string{"bücher", "例え", "ñandú", "a-b", "ü-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, l string) {
		if !utf8.ValidString(l) || isASCII(l) || strings.ContainsAny(l, ".") {
			return
		}
		p, err := punycode(l)
		if err != nil {
			return
		}
		back, err := unpunycode(p)
		if err != nil || back != l {
			t.Fatalf("%q -> %q -> %q, %v", l, p, back, err)
		}
	})
}
