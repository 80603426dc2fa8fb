package remote

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Result letters, as qmail-remote(8) writes them.
const (
	RcptOK   = 'r' // recipient accepted
	RcptPerm = 'h' // recipient rejected permanently
	RcptTemp = 's' // recipient rejected temporarily
	MsgOK    = 'K' // message accepted for the accepted recipients
	MsgTemp  = 'Z' // temporary failure for the message
	MsgPerm  = 'D' // permanent failure for the message
)

// RecipientResult is one recipient's outcome.
type RecipientResult struct {
	Status byte // RcptOK, RcptPerm or RcptTemp
	Text   string
}

// Outcome is a delivery attempt's result in qmail-remote's terms. Recipients is empty
// when the attempt failed before the recipients were tried.
type Outcome struct {
	Recipients []RecipientResult
	Status     byte // MsgOK, MsgTemp or MsgPerm
	Text       string

	// nextHost marks a failure before anything was entrusted to this server (no
	// greeting, a refused HELO, a dropped connection, a TLS policy it cannot meet),
	// after which the next MX is tried, as RFC 5321 section 5.1 asks.
	nextHost bool
}

// Envelope is the SMTP envelope.
type Envelope struct {
	Sender     string
	Recipients []string
}

// sessionConfig is what one SMTP conversation needs besides the connection.
type sessionConfig struct {
	Helo     string
	Timeout  time.Duration
	Policy   TLSPolicy
	Host     string // the server's name, for certificate verification and SNI
	RootCAs  *x509.CertPool
	Cert     *tls.Certificate
	Envelope Envelope
	Message  *Message
}

// session is one SMTP conversation with one server.
type session struct {
	cfg      sessionConfig
	conn     net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	peer     netip.Addr
	ext      map[string]string // EHLO keywords, upper case, to their parameters
	tls      tlsResult
	critical bool       // the final "." went out: a dropped connection may mean a duplicate
	writing  chan error // pending pipelined writes, see sendAll
	mailSent bool       // MAIL FROM went out: the next MX must not be tried

	raw    net.Conn      // the TCP connection under any TLS, for the pool's liveness check
	dc     *deadlineConn // raw with its timeouts, under any TLS
	pool   *Pool         // nil: the connection is closed after one transaction
	keep   bool          // the transaction ended cleanly: no QUIT, the pool may take it
	reused bool          // a pooled connection: a failure before MAIL is accepted is errStale
}

// deadlineConn gives every read and write its own timeout, as qmail's timeoutread
// and timeoutwrite do.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	// readTimeout, when set, replaces timeout for reads: a reused connection's first
	// reply (see Pool). Only the reading goroutine touches it.
	readTimeout time.Duration
}

func (c deadlineConn) Read(p []byte) (int, error) {
	t := c.timeout
	if c.readTimeout > 0 {
		t = c.readTimeout
	}
	c.Conn.SetReadDeadline(time.Now().Add(t))
	return c.Conn.Read(p)
}

func (c deadlineConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(p)
}

// errDropped is a failed read or write: the connection is unusable.
type errDropped struct{ err error }

func (e errDropped) Error() string { return e.err.Error() }

// converse runs the SMTP dialogue on an established connection to peer and returns
// the outcome. It closes conn unless the message was accepted and pool takes the
// connection for the next delivery to key (pool may be nil).
func converse(conn net.Conn, peer netip.Addr, cfg sessionConfig, pool *Pool, key poolKey) Outcome {
	s := &session{cfg: cfg, peer: peer, raw: conn, pool: pool}
	s.dc = &deadlineConn{Conn: conn, timeout: cfg.Timeout}
	s.setConn(s.dc)
	out, err := s.run()
	s.finish(key)
	if err != nil {
		return s.failed(err)
	}
	return out
}

// finish hands the connection to the pool when the session is kept, or closes it.
func (s *session) finish(key poolKey) {
	if s.keep {
		// The message is done with; an idle connection must not hold on to it.
		s.cfg.Envelope, s.cfg.Message = Envelope{}, nil
		if s.pool != nil && s.pool.put(key, s) {
			return
		}
		// The pool is full or closed: the QUIT the transaction left out.
		s.w.WriteString("QUIT\r\n")
		s.w.Flush()
	}
	s.conn.Close() // also ends a pipelined writer stuck on a full buffer
	s.waitWriter()
}

func (s *session) setConn(c net.Conn) {
	s.conn = c
	s.r = bufio.NewReaderSize(c, 4096)
	s.w = bufio.NewWriterSize(c, 16*1024)
}

// failed turns a conversation error into the outcome: a dead connection or a
// server that does not speak SMTP is a temporary failure.
func (s *session) failed(err error) Outcome {
	var b strings.Builder
	b.WriteString("Connected to " + s.peer.String() + " but ")
	if errors.Is(err, errProtocol) {
		b.WriteString("the server's reply was not SMTP (" + oneLine(err.Error()) + "). ")
	} else {
		b.WriteString("connection died. ")
	}
	if s.critical {
		b.WriteString("Possible duplicate! ")
	}
	b.WriteString("(#4.4.2)\n")
	if s.tls.used || s.tls.why != "" {
		b.WriteString(s.tls.String() + "\n")
	}
	return Outcome{Status: MsgTemp, Text: b.String(), nextHost: !s.mailSent}
}

func (s *session) flush() error {
	if err := s.w.Flush(); err != nil {
		return errDropped{err}
	}
	return nil
}

func (s *session) cmd(line string) (Reply, error) {
	s.w.WriteString(line + "\r\n")
	if err := s.flush(); err != nil {
		return Reply{}, err
	}
	return readReply(s.r)
}

// quit ends the conversation with a message-level outcome in qmail's wording:
// status, prepend, the server's address, append, ".", then what the server said.
func (s *session) quit(status byte, prepend, appendText string, rep *Reply) Outcome {
	if !s.keep && s.waitWriter() == nil {
		s.w.WriteString("QUIT\r\n")
		s.w.Flush() // waiting for the reply is pointless
	}
	text := prepend + s.peer.String() + appendText
	if !strings.HasSuffix(appendText, ")") { // our own texts end in their status code
		text += "."
	}
	text += "\n"
	if rep != nil {
		text += said(*rep)
	}
	text += s.tls.String() + "\n"
	return Outcome{Status: status, Text: text}
}

func said(r Reply) string {
	if len(r.Lines) == 0 {
		return ""
	}
	return "Remote host said: " + r.Text()
}

// byCode picks the temporary or permanent letter for a failed reply.
func byCode(code int, perm, temp byte) byte {
	if code >= 500 {
		return perm
	}
	return temp
}

func (s *session) run() (Outcome, error) {
	rep, err := readReply(s.r)
	if err != nil {
		return Outcome{}, err
	}
	if rep.Code != 220 {
		o := s.quit(MsgTemp, "Connected to ", " but greeting failed", &rep)
		o.nextHost = true
		return o, nil
	}
	if rep, err := s.hello(); err != nil {
		return Outcome{}, err
	} else if rep != nil {
		o := s.quit(MsgTemp, "Connected to ", " but my name was rejected", rep)
		o.nextHost = true
		return o, nil
	}

	if out, done, err := s.startTLS(); err != nil || done {
		return out, err
	}
	return s.transaction()
}

// transaction sends one message (MAIL, RCPT, DATA) on a session that has been
// greeted, and ends it with QUIT unless the message was accepted and a pool may keep
// the connection. On a reused connection, a failure before the server accepts MAIL
// FROM is errStale: nothing was entrusted to the server, and the delivery is tried
// again on a new connection.
func (s *session) transaction() (Outcome, error) {
	env, msg := s.cfg.Envelope, s.cfg.Message
	utf8Needed := msg.UTF8Header || !isASCII(env.Sender)
	for _, r := range env.Recipients {
		utf8Needed = utf8Needed || !isASCII(r)
	}
	if _, ok := s.ext["SMTPUTF8"]; utf8Needed && !ok {
		return s.quit(MsgPerm, "Connected to ",
			" but the message has non-ASCII addresses or headers, which need SMTPUTF8, and it does not offer SMTPUTF8. (#5.6.7)", nil), nil
	}
	if lim, ok := s.ext["SIZE"]; ok {
		if n, err := strconv.ParseInt(lim, 10, 64); err == nil && n > 0 && msg.Size > n {
			return s.quit(MsgPerm, "Connected to ",
				fmt.Sprintf(" but the message (%d bytes) is larger than it accepts (%d bytes). (#5.3.4)", msg.Size, n), nil), nil
		}
	}

	mail := "MAIL FROM:<" + quoteAddr(env.Sender) + ">"
	if _, ok := s.ext["SIZE"]; ok {
		mail += " SIZE=" + strconv.FormatInt(msg.Size, 10)
	}
	if _, ok := s.ext["8BITMIME"]; ok && msg.EightBit {
		mail += " BODY=8BITMIME"
	}
	if utf8Needed {
		mail += " SMTPUTF8"
	}
	cmds := []string{mail}
	for _, r := range env.Recipients {
		cmds = append(cmds, "RCPT TO:<"+quoteAddr(r)+">")
	}
	cmds = append(cmds, "DATA")

	_, pipelining := s.ext["PIPELINING"]
	s.mailSent = true
	if pipelining {
		s.sendAll(cmds)
	}
	// next returns the reply to command i: read it when pipelining, else send the
	// command first.
	next := func(i int) (Reply, error) {
		if pipelining {
			return readReply(s.r)
		}
		return s.cmd(cmds[i])
	}

	rep, err := next(0)
	s.dc.readTimeout = 0
	if s.reused && (err != nil || rep.Code < 200 || rep.Code >= 300) {
		return Outcome{}, errStale
	}
	if err != nil {
		return Outcome{}, err
	}
	if rep.Code < 200 || rep.Code >= 300 {
		return s.quit(byCode(rep.Code, MsgPerm, MsgTemp), "Connected to ", " but sender was rejected", &rep), nil
	}
	var out Outcome
	accepted := 0
	for i := range env.Recipients {
		rep, err := next(1 + i)
		if err != nil {
			return Outcome{}, err
		}
		switch {
		case rep.Code >= 200 && rep.Code < 300:
			out.Recipients = append(out.Recipients, RecipientResult{Status: RcptOK})
			accepted++
		default:
			st := byCode(rep.Code, RcptPerm, RcptTemp)
			text := s.peer.String() + " does not like recipient.\n" + said(rep) + s.tls.String() + "\n"
			out.Recipients = append(out.Recipients, RecipientResult{Status: st, Text: text})
		}
	}
	if accepted == 0 {
		if pipelining {
			rep, err = readReply(s.r)
			if err == nil && rep.Code == 354 {
				// The server said go ahead with nobody to deliver to: end the empty
				// message so that it does not wait for one (RFC 2920 section 3.1).
				if err := s.waitWriter(); err == nil {
					s.w.WriteString(".\r\n")
					s.flush()
					readReply(s.r)
				}
			}
		}
		q := s.quit(MsgPerm, "Giving up on ", "", nil)
		q.Recipients = out.Recipients
		return q, nil
	}
	rep, err = next(len(cmds) - 1)
	if err != nil {
		return Outcome{}, err
	}
	if rep.Code != 354 {
		q := s.quit(byCode(rep.Code, MsgPerm, MsgTemp), "", " failed on DATA command", &rep)
		q.Recipients = out.Recipients
		return q, nil
	}

	body, err := msg.Reader()
	if err != nil {
		return Outcome{Status: MsgTemp, Text: textReadMsg}, nil
	}
	if err := s.waitWriter(); err != nil {
		return Outcome{}, err
	}
	if err := writeData(s.w, body); err != nil {
		if !errors.Is(err, errReadMessage) {
			return Outcome{}, errDropped{err}
		}
		// Reading the queued message failed: there is no way to abort DATA other
		// than dropping the connection, which makes the server discard it.
		return Outcome{Status: MsgTemp, Text: textReadMsg}, nil
	}
	s.critical = true
	if err := s.flush(); err != nil {
		return Outcome{}, err
	}
	rep, err = readReply(s.r)
	if err != nil {
		return Outcome{}, err
	}
	s.critical = false
	var q Outcome
	switch {
	case rep.Code >= 200 && rep.Code < 300:
		// A pool keeps the connection: the transaction is over and the next one
		// may start with MAIL FROM (RFC 5321 section 4.1.4).
		s.keep = s.pool != nil && s.r.Buffered() == 0
		q = s.quit(MsgOK, "", " accepted message", &rep)
	default:
		q = s.quit(byCode(rep.Code, MsgPerm, MsgTemp), "", " failed after I sent the message", &rep)
	}
	q.Recipients = out.Recipients
	return q, nil
}

// hello sends EHLO, and HELO if EHLO is refused. It returns the refusing reply
// when both are refused.
func (s *session) hello() (*Reply, error) {
	rep, err := s.cmd("EHLO " + s.cfg.Helo)
	if err != nil {
		return nil, err
	}
	if rep.Code == 250 {
		s.ext = map[string]string{}
		for _, l := range rep.Lines[1:] {
			if len(l) < 4 {
				continue
			}
			kw, param, _ := strings.Cut(strings.TrimSpace(l[4:]), " ")
			s.ext[strings.ToUpper(kw)] = strings.TrimSpace(param)
		}
		return nil, nil
	}
	if rep.Code == 421 {
		return &rep, nil
	}
	s.ext = map[string]string{}
	rep, err = s.cmd("HELO " + s.cfg.Helo)
	if err != nil {
		return nil, err
	}
	if rep.Code != 250 {
		return &rep, nil
	}
	return nil, nil
}

// startTLS upgrades the connection when the server offers STARTTLS and the policy
// allows it, and enforces the policy. done reports that the outcome is final.
func (s *session) startTLS() (out Outcome, done bool, err error) {
	pol := s.cfg.Policy
	_, offered := s.ext["STARTTLS"]
	required := pol.Mode == TLSEncrypt || pol.Mode == TLSVerify || len(pol.Pins) > 0
	if pol.Mode == TLSNone {
		s.tls = tlsResult{why: "disabled for this destination by control/tlsdestinations"}
		return Outcome{}, false, nil
	}
	if !offered {
		s.tls = tlsResult{why: "the server does not offer STARTTLS"}
		if required {
			o := s.quit(MsgTemp, "Connected to ", " but it does not offer STARTTLS, which this destination requires. (#4.7.0)", nil)
			o.nextHost = true
			return o, true, nil
		}
		return Outcome{}, false, nil
	}
	rep, err := s.cmd("STARTTLS")
	if err != nil {
		return Outcome{}, true, err
	}
	if rep.Code != 220 {
		s.tls = tlsResult{why: "the server refused STARTTLS"}
		if required {
			o := s.quit(MsgTemp, "Connected to ", " but STARTTLS was refused, and this destination requires TLS. (#4.7.0)", &rep)
			o.nextHost = true
			return o, true, nil
		}
		return Outcome{}, false, nil
	}
	conf := &tls.Config{
		ServerName: strings.Trim(s.cfg.Host, "[]"),
		// Verification is done after the handshake so that an unverified
		// certificate still encrypts (opportunistic TLS) and the result is recorded.
		InsecureSkipVerify: true,
		// Opportunistic TLS takes what old servers speak, since the alternative is
		// plain text; a destination that demands TLS gets TLS 1.2 or better.
		MinVersion: tls.VersionTLS10,
	}
	if required {
		conf.MinVersion = tls.VersionTLS12
	}
	if _, err := netip.ParseAddr(conf.ServerName); err == nil {
		conf.ServerName = "" // SNI carries names only
	}
	if s.cfg.Cert != nil {
		conf.Certificates = []tls.Certificate{*s.cfg.Cert}
	}
	tc := tls.Client(s.conn, conf)
	if err := tc.Handshake(); err != nil {
		s.tls = tlsResult{why: "TLS handshake failed"}
		o := Outcome{Status: MsgTemp, Text: "Connected to " + s.peer.String() + " but the TLS handshake failed: " + oneLine(err.Error()) + ". (#4.7.0)\n", nextHost: true}
		return o, true, nil
	}
	s.setConn(tc)
	cs := tc.ConnectionState()
	verified, why := verifyPeer(cs, pol, s.cfg.Host, s.cfg.RootCAs)
	s.tls = tlsResult{used: true, verified: verified, version: tlsVersion(cs.Version), why: why}
	if !verified && (pol.Mode == TLSVerify || len(pol.Pins) > 0) {
		o := s.quit(MsgTemp, "Connected to ", " but its certificate does not verify, which this destination requires. (#4.7.5)", nil)
		o.nextHost = true
		return o, true, nil
	}
	if rep, err := s.hello(); err != nil {
		return Outcome{}, true, err
	} else if rep != nil {
		o := s.quit(MsgTemp, "Connected to ", " but my name was rejected", rep)
		o.nextHost = true
		return o, true, nil
	}
	return Outcome{}, false, nil
}

// sendAll writes pipelined commands while the caller reads the replies, so that
// neither side blocks on a full buffer however many recipients there are. Nothing
// else may be written before waitWriter returns.
func (s *session) sendAll(cmds []string) {
	done := make(chan error, 1)
	s.writing = done
	go func() {
		for _, c := range cmds {
			s.w.WriteString(c + "\r\n")
		}
		done <- s.flush()
	}()
}

// waitWriter waits for sendAll's writes to finish.
func (s *session) waitWriter() error {
	if s.writing == nil {
		return nil
	}
	err := <-s.writing
	s.writing = nil
	return err
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
