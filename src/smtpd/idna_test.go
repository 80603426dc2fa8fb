package smtpd

import "testing"

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
	if _, err := asciiDomain("a\xffb.example"); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
}
