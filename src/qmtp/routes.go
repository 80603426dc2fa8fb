package qmtp

import (
	"strconv"
	"strings"

	"github.com/notqmail/notqmail/src/control"
)

// QMTPPort is the QMTP port.
const QMTPPort = 209

// Route is one control/qmtproutes line, domain:relay[:port], as smtproutes: mail for
// domain (or, with a leading dot, its subdomains; an empty domain for all) goes by
// QMTP to relay, or to domain's mail exchangers when relay is empty.
type Route struct {
	Domain string
	Relay  string
	Port   int // QMTPPort unless given
}

// Routes is control/qmtproutes.
type Routes []Route

// LoadRoutes reads control/qmtproutes; a missing file is no routes.
func LoadRoutes(ctl control.Dir) (Routes, error) {
	lines, err := ctl.Lines("qmtproutes")
	if err != nil {
		return nil, err
	}
	var rs Routes
	for _, l := range lines {
		dom, val, ok := strings.Cut(l.Text, ":")
		if !ok {
			return nil, ctl.Errorf("qmtproutes", l.N, "no colon: want domain:relay[:port]")
		}
		r := Route{Domain: strings.ToLower(strings.TrimSpace(dom)), Port: QMTPPort}
		relay, port := val, ""
		if strings.HasPrefix(val, "[") {
			end := strings.IndexByte(val, ']')
			if end < 0 {
				return nil, ctl.Errorf("qmtproutes", l.N, "unclosed [ in relay %q", val)
			}
			relay, port = val[:end+1], strings.TrimPrefix(val[end+1:], ":")
		} else {
			relay, port, _ = strings.Cut(val, ":")
		}
		r.Relay = strings.TrimSpace(relay)
		if strings.ContainsAny(r.Relay, " \t") {
			return nil, ctl.Errorf("qmtproutes", l.N, "white space in relay %q", r.Relay)
		}
		if port != "" {
			n, err := strconv.Atoi(port)
			if err != nil || n < 1 || n > 65535 {
				return nil, ctl.Errorf("qmtproutes", l.N, "bad port %q", port)
			}
			r.Port = n
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// Lookup finds the route for host by qmail's smtproutes rule: host itself, then each
// ".suffix" from the longest, then the default route; the first line for a domain
// wins.
func (rs Routes) Lookup(host string) (Route, bool) {
	host = strings.ToLower(host)
	m := make(map[string]Route, len(rs))
	for _, r := range rs {
		if _, dup := m[r.Domain]; !dup {
			m[r.Domain] = r
		}
	}
	for i := 0; i <= len(host); i++ {
		if i == 0 || i == len(host) || host[i] == '.' {
			if r, ok := m[host[i:]]; ok {
				return r, true
			}
		}
	}
	return Route{}, false
}

// MXPS reports whether an MX distance announces QMTP by the MXPS convention: 12801,
// then every 16 up to 13055 (0x3201, 0x3211, ...). Such a mail exchanger is tried by
// QMTP on port 209 first, and by SMTP if that fails.
func MXPS(pref int) bool { return pref >= 12800 && pref <= 13055 && pref%16 == 1 }
