package smtpd

import (
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// received is qmail-smtpd's trace line, in qmail's format:
//
//	Received: from HOST (HELO helo) (INFO@IP)
//	  by LOCAL with SMTP; 21 Nov 2026 23:33:52 -0000
//
// "(HELO helo)" appears only when the HELO name differs from the host name, "INFO@"
// only with an ident answer; characters outside qmail's safe set become '?', so a
// client cannot forge header structure. SMTPUTF8 sessions say UTF8SMTP (RFC 6531).
func (s *session) received() string {
	host := s.cfg.RemoteHost
	if host == "" {
		host = "unknown"
	}
	ip := s.cfg.RemoteIP
	if ip == "" {
		ip = "unknown"
	}
	local := s.cfg.LocalHost
	if local == "" {
		local = s.cfg.LocalIPStr
	}
	if local == "" {
		local = "unknown"
	}
	var b strings.Builder
	b.WriteString("Received: from ")
	b.WriteString(safe(host))
	if s.helo != "" && !strings.EqualFold(s.helo, host) {
		b.WriteString(" (HELO " + safe(s.helo) + ")")
	}
	b.WriteString(" (")
	if s.cfg.RemoteInfo != "" {
		b.WriteString(safe(s.cfg.RemoteInfo) + "@")
	}
	b.WriteString(safe(ip))
	b.WriteString(")\n  by " + safe(local) + " with " + s.protocol())
	if s.tls != nil || s.authUser != "" {
		var c []string
		if s.tls != nil {
			c = append(c, tlsVersion(s.tls.Version)+" "+tls.CipherSuiteName(s.tls.CipherSuite))
		}
		if s.authUser != "" {
			c = append(c, "authenticated as "+safe(s.authUser))
		}
		b.WriteString(" (" + strings.Join(c, ", ") + ")")
	}
	b.WriteString("; " + date822(s.cfg.Now()) + "\n")
	return b.String()
}

// protocol is the "with" of the Received line: qmail's SMTP, or with TLS or AUTH
// the RFC 3848 names (ESMTPS, ESMTPA, ESMTPSA), UTF8 for SMTPUTF8 (RFC 6531).
func (s *session) protocol() string {
	suffix := ""
	if s.tls != nil {
		suffix += "S"
	}
	if s.authUser != "" {
		suffix += "A"
	}
	switch {
	case s.utf8:
		return "UTF8SMTP" + suffix
	case suffix != "":
		return "ESMTP" + suffix
	}
	return "SMTP"
}

// safe replaces what qmail's Received line does not allow.
func safe(t string) string {
	b := []byte(t)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".@%+/=:-", c) >= 0) {
			b[i] = '?'
		}
	}
	return string(b)
}

// date822 is qmail's date822fmt: "21 Nov 2026 23:33:52 -0000", always UTC.
func date822(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%d %s %d %02d:%02d:%02d -0000", t.Day(), t.Month().String()[:3], t.Year(), t.Hour(), t.Minute(), t.Second())
}

// logf writes one line to the log.
func (s *session) logf(format string, args ...any) {
	if s.cfg.Log == nil {
		return
	}
	fmt.Fprintf(s.cfg.Log, "qmail-smtpd %s: "+format+"\n", append([]any{s.cfg.ID}, args...)...)
}

// logMessage writes the one line per transaction: what was offered and what came of
// it, so a log answers "what happened to this mail".
func (s *session) logMessage(qp int, size int64, r Reply, note string) {
	result := note
	if r.Code != 0 {
		result = r.String()
	}
	var rc []string
	for _, a := range s.rcpts {
		rc = append(rc, strconv.Quote(a))
	}
	var rj []string
	for _, a := range s.rejected {
		rj = append(rj, strconv.Quote(a))
	}
	extra := ""
	if note != "" && r.Code != 0 {
		extra = " note=" + strconv.Quote(note)
	}
	if more := s.rejectedN - len(s.rejected); more > 0 {
		rj = append(rj, fmt.Sprintf("...%d more", more))
	}
	if s.authUser != "" {
		extra += " auth=" + strconv.Quote(sanitize(s.authUser))
	}
	s.logf("message remote=%s from=%s rcpts=[%s] rejected=[%s] bytes=%d qp=%d result=%s%s",
		safe(s.remoteIP()), strconv.Quote(s.from), strings.Join(rc, ","), strings.Join(rj, ","), size, qp, strconv.Quote(result), extra)
}

func (s *session) logSession() {
	end := s.end
	if end == "" {
		end = "closed"
	}
	tlsv := "none"
	if s.tls != nil {
		tlsv = tlsVersion(s.tls.Version)
	}
	s.logf("session remote=%s host=%s helo=%s tls=%s auth=%s relay=%t messages=%d accepted=%d end=%s duration=%.3fs",
		safe(s.remoteIP()), strconv.Quote(s.cfg.RemoteHost), strconv.Quote(s.helo), tlsv, strconv.Quote(s.authUser), s.relaySet, s.messages, s.accepted, strconv.Quote(end), s.cfg.Now().Sub(s.start).Seconds())
}

func (s *session) remoteIP() string {
	if s.cfg.RemoteIP == "" {
		return "unknown"
	}
	return s.cfg.RemoteIP
}
