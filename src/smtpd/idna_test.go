package smtpd

import (
	"strings"
	"testing"
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

// FuzzIDNA: a domain that converts to ASCII converts back to a domain that converts to
// the same ASCII form, and the ASCII form is ASCII.
func FuzzIDNA(f *testing.F) {
	for _, s := range []string{"bücher.example", "例え.テスト", "ñandú", "a-b.ü-", "xn--bcher-kva"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, d string) {
		a, err := asciiDomain(d)
		if err != nil {
			return
		}
		if !isASCII(a) {
			t.Fatalf("asciiDomain(%q) = %q, not ASCII", d, a)
		}
		if u, ok := unicodeDomain(a); ok {
			if back, err := asciiDomain(u); err != nil || back != a {
				t.Fatalf("%q -> %q -> %q -> %q, %v", d, a, u, back, err)
			}
		}
	})
}
