package remote

import "strings"

// quoteAddr writes an envelope address for MAIL FROM or RCPT TO: the local part (up
// to the last '@') as a dot-atom when it is one, else as a quoted string. An address
// without '@' goes out unchanged, as in qmail.
func quoteAddr(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	local, domain := addr[:at], addr[at+1:]
	if isDotAtom(local) {
		return addr
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(local); i++ {
		c := local[i]
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteString("\"@")
	b.WriteString(domain)
	return b.String()
}

// isDotAtom reports whether s is atoms joined by single dots (RFC 5321 Dot-string;
// bytes above 127 count as atext, RFC 6531).
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c >= 0x80, c == '.':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
