package remote

import (
	"context"
	"io"
	"net"
	"net/netip"

	"github.com/notqmail/notqmail/src/dnsresolve"
	"github.com/notqmail/notqmail/src/qmtp"
)

// QMTP delivery (added by the QMTP/POP3 work; the protocol lives in package qmtp).
// Destinations routed by control/qmtproutes get the message by QMTP instead of SMTP,
// and a mail exchanger that announces QMTP by its MX distance (MXPS: 12801, 12817,
// ...) is tried by QMTP on port 209 first, falling back to SMTP when that port does
// not answer. QMTP has no TLS: an MXPS exchanger is used by QMTP only when
// tlsdestinations asks for no more than opportunistic TLS.

// deliverQMTP delivers by QMTP when qmtproutes routes host; ok is false otherwise.
func (cfg *Config) deliverQMTP(ctx context.Context, host, sender string, recipients []string, m *Message) (Outcome, bool) {
	// Matched as smtproutes is, on the domain as DNS sees it.
	route, ok := lookupDomain(cfg.QMTPRoutes, host, func(r qmtp.Route) string { return r.Domain })
	if !ok {
		return Outcome{}, false
	}
	var hosts []dnsresolve.Host
	if route.Relay != "" {
		addrs, err := cfg.Resolver.Addrs(ctx, route.Relay)
		if err != nil {
			return dnsOutcome(route.Relay, err), true
		}
		hosts = []dnsresolve.Host{{Name: route.Relay, Addrs: addrs}}
	} else {
		var err error
		if hosts, err = cfg.Resolver.MX(ctx, host); err != nil {
			return dnsOutcome(host, err), true
		}
	}
	var lastErr error
	for _, h := range hosts {
		conn, peer, err := cfg.dialHost(ctx, host, h.Addrs, route.Port)
		if err != nil {
			lastErr = err
			continue
		}
		return cfg.qmtpSession(conn, peer, sender, recipients, m), true
	}
	text := "Sorry, I wasn't able to establish a QMTP connection. (#4.4.1)\n"
	if lastErr != nil {
		text += oneLine(lastErr.Error()) + "\n"
	}
	return Outcome{Status: MsgTemp, Text: text}, true
}

// tryMXPS delivers by QMTP to an MXPS mail exchanger; ok is false when its QMTP port
// cannot be reached (or the TLS policy rules QMTP out) and SMTP should be tried.
func (cfg *Config) tryMXPS(ctx context.Context, domain string, h dnsresolve.Host, pol TLSPolicy, sender string, recipients []string, m *Message) (Outcome, bool) {
	if !qmtp.MXPS(h.Pref) || pol.Mode != TLSMay && pol.Mode != TLSNone {
		return Outcome{}, false
	}
	conn, peer, err := cfg.dialHost(ctx, domain, h.Addrs, qmtp.QMTPPort)
	if err != nil {
		return Outcome{}, false
	}
	return cfg.qmtpSession(conn, peer, sender, recipients, m), true
}

// qmtpSession sends the message over conn and turns the responses into
// qmail-remote's reports: K, D and Z per recipient become r, h and s; a recipient
// without a response (the connection died) is a temporary failure.
func (cfg *Config) qmtpSession(conn net.Conn, peer netip.Addr, sender string, recipients []string, m *Message) Outcome {
	defer conn.Close()
	end, err := m.src.Seek(0, io.SeekEnd)
	if err != nil {
		return Outcome{Status: MsgTemp, Text: textReadMsg}
	}
	body, err := m.Reader()
	if err != nil {
		return Outcome{Status: MsgTemp, Text: textReadMsg}
	}
	resps, err := qmtp.Converse(conn, cfg.timeout(), body, end-m.start, sender, recipients)
	var out Outcome
	accepted := 0
	for i := range recipients {
		if i >= len(resps) {
			out.Recipients = append(out.Recipients, RecipientResult{Status: RcptTemp,
				Text: "Connected to " + peer.String() + " but connection died. Possible duplicate! (#4.4.2)\n"})
			continue
		}
		r := resps[i]
		said := peer.String() + " said: " + oneLine(r.Text) + "\n"
		switch r.Code {
		case 'K':
			accepted++
			out.Recipients = append(out.Recipients, RecipientResult{Status: RcptOK})
		case 'D':
			out.Recipients = append(out.Recipients, RecipientResult{Status: RcptPerm, Text: said})
		default:
			out.Recipients = append(out.Recipients, RecipientResult{Status: RcptTemp, Text: said})
		}
	}
	switch {
	case accepted > 0:
		out.Status, out.Text = MsgOK, peer.String()+" accepted message by QMTP.\n"
	case err != nil:
		out.Status, out.Text = MsgTemp, "Connected to "+peer.String()+" but QMTP failed: "+oneLine(err.Error())+" (#4.4.2)\n"
	default:
		out.Status, out.Text = MsgPerm, "Giving up on "+peer.String()+".\n"
	}
	return out
}
