package smtpd

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// asciiDomain returns the lowercased ASCII form of a domain: every label with
// non-ASCII characters becomes its A-label (UTS #46 lookup mapping, which includes NFC
// normalisation), so rcpthosts written in either form match a UTF-8 domain from an
// SMTPUTF8 client.
func asciiDomain(d string) (string, error) {
	if isASCII(d) {
		return strings.ToLower(d), nil
	}
	if !utf8.ValidString(d) {
		return "", errors.New("domain is not valid UTF-8")
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("invalid internationalised domain: %w", err)
	}
	if len(a) > 255 {
		return "", errors.New("domain too long")
	}
	return strings.ToLower(a), nil
}

// unicodeDomain returns the domain with every A-label ("xn--...") decoded, lowercased;
// ok is false when a label does not decode, or when nothing was encoded.
func unicodeDomain(d string) (string, bool) {
	d = strings.ToLower(d)
	if !strings.Contains(d, "xn--") {
		return d, false
	}
	u, err := idna.Lookup.ToUnicode(d)
	if err != nil {
		return "", false
	}
	// Only a label that encodes back to itself was a valid A-label ("xn--" alone
	// decodes to nothing, for one).
	if back, err := idna.Lookup.ToASCII(u); err != nil || strings.ToLower(back) != d {
		return "", false
	}
	return u, u != d
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
