package mailaddr

import "strings"

// atomText reports whether c may appear unquoted in a local part (RFC 821 and 822
// disagree; this is the intersection qmail uses).
func atomText(c byte) bool {
	if c >= 128 || c <= 32 || c == 127 {
		return false
	}
	return !strings.ContainsRune("\"(),:;<>@[\\]", rune(c))
}

// QuoteNeeded reports whether a local part must be quoted: it is empty, holds a
// character outside atomText, or has a leading, trailing or doubled dot.
func QuoteNeeded(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); i++ {
		if !atomText(s[i]) {
			return true
		}
	}
	return s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..")
}

// QuoteLocal quotes a local part if it needs it, escaping CR, LF, '"' and '\'.
func QuoteLocal(s string) string {
	if !QuoteNeeded(s) {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\r', '\n', '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// QuoteAddr quotes the local part of an envelope address (everything before its last
// '@') if it needs it, so that the address can be written in a header. The empty
// address stays empty.
func QuoteAddr(addr string) string {
	if addr == "" {
		return ""
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return QuoteLocal(addr)
	}
	return QuoteLocal(addr[:at]) + addr[at:]
}
