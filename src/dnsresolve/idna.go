package dnsresolve

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// toALabels converts a domain name with non-ASCII labels to A-labels ("xn--" and
// Punycode) with the UTS #46 lookup mapping, lowercased.
func toALabels(name string) (string, bool) {
	if !utf8.ValidString(name) {
		return "", false
	}
	a, err := idna.Lookup.ToASCII(name)
	if err != nil {
		return "", false
	}
	return strings.ToLower(a), true
}
