package smtpd

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

var (
	replyTLSReady    = Reply{220, "2.0.0", "ready to start TLS"}
	replyTLSAgain    = Reply{503, "5.5.1", "TLS already active"}
	replyTLSInMail   = Reply{503, "5.5.1", "no STARTTLS during mail transaction"}
	replyTLSArg      = Reply{501, "5.5.4", "STARTTLS takes no parameters"}
	replyNeedTLSAuth = Reply{538, "5.7.11", "encryption required for requested authentication mechanism"}
)

// startTLS answers STARTTLS (RFC 3207): 220, then the handshake on the raw
// connection. Whatever the client sent after the command before the handshake is
// dropped, so plain-text commands cannot be injected into the encrypted session
// (the STARTTLS injection attack). Afterwards the session starts over: the client
// must say EHLO again, and authentication and the transaction are forgotten.
func (s *session) starttls(arg string) error {
	switch {
	case s.cfg.TLS == nil:
		s.reply(replyUnimplemented)
		return nil
	case s.tls != nil:
		s.reply(replyTLSAgain)
		return nil
	case s.inMail:
		s.reply(replyTLSInMail)
		return nil
	case arg != "":
		s.reply(replyArgSyntax)
		return nil
	}
	if n := s.br.Buffered(); n > 0 {
		s.logf("tls remote=%s: dropped %d bytes sent after STARTTLS before the handshake", safe(s.remoteIP()), n)
		s.br.Discard(n)
	}
	s.reply(replyTLSReady)
	if err := s.flush(); err != nil {
		return err
	}
	if err := s.handshake(); err != nil {
		return err
	}
	s.helo, s.esmtp, s.enhanced = "", false, false
	delete(s.pluginEnv, "SMTPHELOHOST")
	s.forgetHelo()
	if s.authUser != "" {
		s.authUser = ""
		delete(s.pluginEnv, "SMTPAUTHUSER")
		s.relay, s.relaySet = s.cfg.RelayClient, s.cfg.RelaySet
	}
	return nil
}

// handshake turns the connection into a TLS server connection. A failed
// handshake is logged with the reason and ends the session: nothing useful can be
// said to the client any more.
func (s *session) handshake() error {
	raw := asNetConn(s.conn)
	tc := tls.Server(raw, s.cfg.TLS)
	if s.cfg.Timeout > 0 {
		tc.SetDeadline(time.Now().Add(s.cfg.Timeout))
	}
	if err := tc.Handshake(); err != nil {
		s.end = "tls handshake failed"
		s.logf("tls handshake failed remote=%s: %s", safe(s.remoteIP()), sanitize(handshakeReason(err)))
		return errHangup
	}
	st := tc.ConnectionState()
	s.tls = &st
	s.conn, s.dl = tc, tc
	s.br.Reset(tc)
	s.bw.Reset(tc)
	s.logf("tls remote=%s version=%s cipher=%s sni=%s", safe(s.remoteIP()),
		tlsVersion(st.Version), tls.CipherSuiteName(st.CipherSuite), strconv.Quote(sanitize(st.ServerName)))
	return nil
}

// handshakeReason says why a handshake failed in words an administrator can use.
func handshakeReason(err error) string {
	var re tls.RecordHeaderError
	switch {
	case errors.As(err, &re):
		return "not a TLS client hello (plain text or another protocol on a TLS port?): " + err.Error()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout: the client did not finish the handshake within timeoutsmtpd"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "client closed the connection during the handshake (it may not trust our certificate)"
	}
	if m := err.Error(); strings.Contains(m, "bad record MAC") {
		// OpenSSL clients that reject the certificate under TLS 1.3 send their
		// alert in a form the server cannot decrypt.
		return "client aborted the handshake (it may not trust our certificate): " + m
	}
	if m := err.Error(); strings.Contains(m, "remote error: ") {
		_, alert, _ := strings.Cut(m, "remote error: ")
		return "client sent alert: " + alert + " (it may not trust our certificate)"
	}
	return err.Error()
}

func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return "0x" + strconv.FormatUint(uint64(v), 16)
}

// asNetConn gives crypto/tls the net.Conn it needs: the listener's connection as
// it is, tcpserver's descriptors (or a pipe) wrapped.
func asNetConn(c io.ReadWriter) net.Conn {
	if nc, ok := c.(net.Conn); ok {
		return nc
	}
	return &rwConn{ReadWriter: c}
}

type rwConn struct{ io.ReadWriter }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "stdio" }

// Close does nothing: the descriptors belong to the process, closed at its exit.
func (c *rwConn) Close() error         { return nil }
func (c *rwConn) LocalAddr() net.Addr  { return pipeAddr{} }
func (c *rwConn) RemoteAddr() net.Addr { return pipeAddr{} }
func (c *rwConn) SetDeadline(t time.Time) error {
	if d, ok := c.ReadWriter.(deadliner); ok {
		d.SetReadDeadline(t)
		return d.SetWriteDeadline(t)
	}
	return nil
}
func (c *rwConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.ReadWriter.(deadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}
func (c *rwConn) SetWriteDeadline(t time.Time) error {
	if d, ok := c.ReadWriter.(deadliner); ok {
		return d.SetWriteDeadline(t)
	}
	return nil
}

// closeTLS sends close_notify at the end of a TLS session, so the client sees a
// clean end rather than a truncation.
func (s *session) closeTLS() {
	if tc, ok := s.conn.(*tls.Conn); ok && s.tls != nil {
		tc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		tc.CloseWrite()
	}
}
