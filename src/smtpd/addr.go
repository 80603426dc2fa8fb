package smtpd

import (
	"net/netip"
	"strings"
	"unicode/utf8"
)

// maxAddr is qmail-smtpd's limit on an envelope address; qmail-queue refuses anything
// over 1003 bytes, and 900 leaves room for RELAYCLIENT.
const maxAddr = 900

// path is a parsed MAIL FROM or RCPT TO argument.
type path struct {
	addr   string   // as qmail queues it: local part unquoted, "@", domain; "" is <>
	local  string   // the unquoted local part
	domain string   // "" when the address has no domain (postmaster)
	params []string // ESMTP parameters after the path
}

// parsePath parses the text after "FROM:" or "TO:". It accepts what qmail-smtpd
// accepts that is unambiguous, a path without angle brackets (taken up to the first
// space), and source routes (@a,@b:user@domain, route dropped as RFC 5321 allows);
// the result is the address qmail-queue gets, which is what every relay decision is
// taken on.
func parsePath(arg string) (path, bool) {
	s := strings.TrimLeft(arg, " ")
	var inner, rest string
	if strings.HasPrefix(s, "<") {
		end, ok := closeBracket(s)
		if !ok {
			return path{}, false
		}
		inner, rest = s[1:end], s[end+1:]
		if rest != "" && rest[0] != ' ' {
			return path{}, false
		}
	} else {
		inner, rest, _ = strings.Cut(s, " ")
		if inner == "" {
			return path{}, false
		}
	}
	var p path
	for _, f := range strings.Split(rest, " ") {
		if f != "" {
			p.params = append(p.params, f)
		}
	}
	if inner == "" {
		return p, true
	}
	if inner[0] == '@' {
		colon := strings.IndexByte(inner, ':')
		if colon < 0 || !validRoute(inner[:colon]) {
			return path{}, false
		}
		inner = inner[colon+1:]
	}
	local, rem, ok := parseLocal(inner)
	if !ok || local == "" {
		return path{}, false
	}
	p.local = local
	switch {
	case rem == "":
	case rem[0] == '@' && validDomain(rem[1:]):
		p.domain = rem[1:]
	default:
		return path{}, false
	}
	p.addr = local
	if p.domain != "" {
		p.addr += "@" + p.domain
	}
	if len(p.addr) > maxAddr {
		return path{}, false
	}
	return p, true
}

// closeBracket returns the index of the '>' closing the path that s starts with,
// skipping quoted strings and their backslash escapes.
func closeBracket(s string) (int, bool) {
	quoted := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == '>':
			return i, true
		case !quoted && c == '<':
			return 0, false
		}
	}
	return 0, false
}

// validRoute checks "@a,@b" of a source route.
func validRoute(r string) bool {
	for _, hop := range strings.Split(r, ",") {
		if len(hop) < 2 || hop[0] != '@' || !validDomain(hop[1:]) {
			return false
		}
	}
	return true
}

// parseLocal reads a dot-string or quoted-string local part and returns it unquoted
// with the rest of s ("" or "@domain").
func parseLocal(s string) (local, rest string, ok bool) {
	if strings.HasPrefix(s, "\"") {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\':
				if i+1 >= len(s) || !printable(s[i+1]) {
					return "", "", false
				}
				i++
				b.WriteByte(s[i])
			case c == '"':
				return b.String(), s[i+1:], true
			case !printable(c) && c != ' ':
				return "", "", false
			default:
				b.WriteByte(c)
			}
		}
		return "", "", false
	}
	at := strings.IndexByte(s, '@')
	if at < 0 {
		at = len(s)
	}
	for i := 0; i < at; i++ {
		if !atext(s[i]) && s[i] != '.' {
			return "", "", false
		}
	}
	return s[:at], s[at:], true
}

// printable is a byte allowed in a quoted local part: visible ASCII, or part of a
// UTF-8 character (checked for validity separately).
func printable(c byte) bool { return c > ' ' && c != 0x7f }

// atext is RFC 5322 atext, widened by RFC 6531 to UTF-8.
func atext(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c >= 0x80:
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// validDomain accepts a dot-separated host name (letters, digits, '-', '_', UTF-8 for
// U-labels; no empty labels, no trailing dot) or an address literal: [d.d.d.d] or
// [IPv6:...].
func validDomain(d string) bool {
	if d == "" || len(d) > 255 {
		return false
	}
	if d[0] == '[' {
		_, ok := literalAddr(d)
		return ok
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 && isASCII(l) {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c >= 0x80) {
				return false
			}
		}
	}
	return true
}

// literalAddr parses an address literal "[1.2.3.4]" or "[IPv6:::1]".
func literalAddr(d string) (netip.Addr, bool) {
	if len(d) < 3 || d[0] != '[' || d[len(d)-1] != ']' {
		return netip.Addr{}, false
	}
	in := d[1 : len(d)-1]
	if len(in) > 5 && strings.EqualFold(in[:5], "IPv6:") {
		a, err := netip.ParseAddr(in[5:])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return netip.Addr{}, false
		}
		return a, true
	}
	a, err := netip.ParseAddr(in)
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}

// checkText reports why an address cannot be accepted as text: invalid UTF-8, or
// non-ASCII without SMTPUTF8.
func checkText(addr string, smtputf8 bool) (Reply, bool) {
	if isASCII(addr) {
		return Reply{}, true
	}
	if !utf8.ValidString(addr) {
		return replyBadUTF8, false
	}
	if !smtputf8 {
		return replyNeedUTF8, false
	}
	return Reply{}, true
}

// routeDomains lists every domain some mail system could route addr to: the domain
// after the last '@' (where qmail delivers), and the hosts hidden in the local part
// by the %-hack (user%host), a quoted '@' ("user@host"@domain) and UUCP bang paths
// (host!user). A client that may not relay must be allowed every one of them, so no
// address form can make this server or one behind it relay.
func routeDomains(local, domain string) []string {
	var ds []string
	if domain != "" {
		ds = append(ds, domain)
	}
	bang := strings.Split(local, "!")
	ds = append(ds, bang[:len(bang)-1]...)
	last := bang[len(bang)-1]
	parts := strings.FieldsFunc("x"+last, func(r rune) bool { return r == '@' || r == '%' })
	if strings.ContainsAny(last, "@%") {
		// FieldsFunc drops empty hosts ("u%@d"); an empty host is no host we allow.
		n := strings.Count(last, "@") + strings.Count(last, "%")
		if len(parts)-1 < n {
			ds = append(ds, "")
		}
		ds = append(ds, parts[1:]...)
	}
	return ds
}
