package qmtp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/queueclient"
	"github.com/notqmail/notqmail/src/rcpthosts"
)

// Limits on what a client may send. A message is streamed to qmail-queue and never
// held in memory, so only databytes bounds it; addresses and the QMTP recipient list
// are held, so they are bounded here.
const (
	maxMessage    = 1 << 62 // any message a netstring can announce; databytes is the real limit
	maxAddrRead   = 1 << 16 // an address longer than this is a protocol error
	maxRecipients = 1 << 20 // bytes of a QMTP recipient list
	// DefaultTimeout is qmail-qmtpd's time limit for each read and write.
	DefaultTimeout = 1200 * time.Second
	// QMQPSessionLimit is the whole QMQP session's limit (the protocol says an hour).
	QMQPSessionLimit = time.Hour
)

// Conn is the client connection. When it can take deadlines (a net.Conn), each read
// and write is bounded by the timeout.
type Conn interface {
	io.Reader
	io.Writer
}

type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// ServerConfig is what a qmail-qmtpd or qmail-qmqpd session needs.
type ServerConfig struct {
	Control control.Dir
	// Env looks up TCPREMOTEIP, TCPREMOTEHOST, TCPREMOTEINFO, TCPLOCALHOST, RELAYCLIENT
	// and DATABYTES; a set but empty RELAYCLIENT allows relaying.
	Env     func(string) (string, bool)
	Queue   queueclient.Config
	Now     func() time.Time
	Timeout time.Duration // 0: DefaultTimeout
	Log     io.Writer     // protocol errors; may be nil
}

func (cfg *ServerConfig) env(name string) (string, bool) {
	if cfg.Env == nil {
		return "", false
	}
	return cfg.Env(name)
}

func (cfg *ServerConfig) now() time.Time {
	if cfg.Now != nil {
		return cfg.Now()
	}
	return time.Now()
}

func (cfg *ServerConfig) logf(format string, a ...any) {
	if cfg.Log != nil {
		fmt.Fprintf(cfg.Log, format+"\n", a...)
	}
}

// databytes is control/databytes, overridden by $DATABYTES as in qmail-smtpd; 0 means
// no limit.
func (cfg *ServerConfig) databytes() (int64, error) {
	if v, ok := cfg.env("DATABYTES"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad DATABYTES %q", v)
		}
		return n, nil
	}
	n, err := cfg.Control.Int("databytes", 0)
	return int64(max(n, 0)), err
}

// received is the trace line qmail's received() writes, with QMTP or QMQP as the
// protocol:
//
//	Received: from HOST (INFO@IP)
//	  by LOCAL with QMTP; 21 Nov 2026 23:33:52 -0000
func (cfg *ServerConfig) received(proto string) string {
	get := func(name string) string {
		if v, ok := cfg.env(name); ok && v != "" {
			return safe(v)
		}
		return "unknown"
	}
	info := ""
	if v, ok := cfg.env("TCPREMOTEINFO"); ok && v != "" {
		info = safe(v) + "@"
	}
	local := get("TCPLOCALHOST")
	if local == "unknown" {
		local = get("TCPLOCALIP") // as qmail-smtpd does without a local host name
	}
	t := cfg.now().UTC()
	return fmt.Sprintf("Received: from %s (%s%s)\n  by %s with %s; %d %s %d %02d:%02d:%02d -0000\n",
		get("TCPREMOTEHOST"), info, get("TCPREMOTEIP"), local, proto,
		t.Day(), t.Month().String()[:3], t.Year(), t.Hour(), t.Minute(), t.Second())
}

// safe keeps the bytes qmail's received.c lets into a header (letters, digits and
// ".@%+/=:-") and turns the others into '?', so a client cannot forge header
// structure.
func safe(s string) string {
	b := []byte(s)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".@%+/=:-", c) >= 0
		if !ok {
			b[i] = '?'
		}
	}
	return string(b)
}

// session holds one connection's reader and writer with their deadlines.
type session struct {
	cfg      *ServerConfig
	conn     Conn
	r        *bufio.Reader
	w        *bufio.Writer
	deadline time.Time // whole-session limit (QMQP); zero for none
}

func newSession(conn Conn, cfg *ServerConfig) *session {
	s := &session{cfg: cfg, conn: conn}
	s.r = bufio.NewReaderSize(readerFunc(s.read), 16*1024)
	s.w = bufio.NewWriterSize(writerFunc(s.write), 4096)
	return s
}

func (s *session) timeout() time.Time {
	t := s.cfg.Timeout
	if t <= 0 {
		t = DefaultTimeout
	}
	d := time.Now().Add(t)
	if !s.deadline.IsZero() && s.deadline.Before(d) {
		d = s.deadline
	}
	return d
}

func (s *session) read(p []byte) (int, error) {
	if d, ok := s.conn.(deadliner); ok {
		d.SetReadDeadline(s.timeout())
	}
	return s.conn.Read(p)
}

func (s *session) write(p []byte) (int, error) {
	if d, ok := s.conn.(deadliner); ok {
		d.SetWriteDeadline(s.timeout())
	}
	return s.conn.Write(p)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// respond writes one response netstring: K, Z or D and a text.
func (s *session) respond(code byte, text string) {
	s.w.Write(Append(nil, append([]byte{code}, text...)))
}

// Texts of the responses, in qmail-smtpd's words where it has them.
const (
	textTooBig       = "sorry, that message size exceeds my databytes limit (#5.3.4)"
	textNotRcpthosts = "sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"
	textAddrTooLong  = "sorry, that address is too long (#5.1.3)"
	textEncoding     = "sorry, I only accept messages in LF or CRLF encoding (#5.6.1)"
	textNoRcpt       = "sorry, no recipients (#5.1.3)"
	textQueueOpen    = "qq unable to start (#4.3.0)"
	textControl      = "unable to read controls (#4.3.0)"
)

// queued is the success response for a message qmail-queue took.
func (s *session) queued(c *queueclient.Client) string {
	return fmt.Sprintf("ok %d qp %d", s.cfg.now().Unix(), c.PID())
}

// protocolFailure ends a session after malformed input: the client hears a permanent
// failure naming the problem (unless it has gone), and nothing is queued.
func (s *session) protocolFailure(c *queueclient.Client, err error) {
	if c != nil {
		c.Fail()
		c.Close()
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return // the client went away before the end: it expects nothing
	}
	s.cfg.logf("%v", err)
	if IsProtocolError(err) {
		s.respond('D', err.Error()+" (#5.5.2)")
		s.w.Flush()
	}
}

// openQueue starts qmail-queue and writes the trace line; nil when it cannot start
// (the error text is returned for the responses).
func (s *session) openQueue(proto string) (*queueclient.Client, string) {
	c, err := s.cfg.Queue.Open()
	if err != nil {
		var qe *queueclient.Error
		if errors.As(err, &qe) {
			return nil, qe.Status()
		}
		return nil, "Z" + textQueueOpen
	}
	io.WriteString(c, s.cfg.received(proto))
	return c, ""
}

// ServeQMTP is qmail-qmtpd: it reads packages (message, sender, recipients) until the
// client closes the connection, queues each message for the recipients it accepts,
// and answers one response per recipient, in order.
func ServeQMTP(conn Conn, cfg ServerConfig) {
	s := newSession(conn, &cfg)
	for s.qmtpPackage() {
	}
}

// qmtpPackage handles one package; false ends the session.
func (s *session) qmtpPackage() bool {
	n, err := ReadLength(s.r, maxMessage)
	if err == io.EOF {
		return false // the client is done
	}
	if err != nil {
		s.protocolFailure(nil, err)
		return false
	}
	if n == 0 {
		s.protocolFailure(nil, protoErr("empty message netstring (no encoding byte)"))
		return false
	}
	enc, err := s.r.ReadByte()
	if err != nil {
		s.protocolFailure(nil, unexpected(err))
		return false
	}
	n--
	fail := "" // a response for every recipient, once known
	limit, err := s.cfg.databytes()
	switch {
	case err != nil:
		fail = "Z" + textControl
	case enc != '\n' && enc != '\r':
		fail = "D" + textEncoding
	case limit > 0 && n > limit:
		fail = "D" + textTooBig
	}
	var c *queueclient.Client
	if fail == "" {
		c, fail = s.openQueue("QMTP")
	}
	var dst io.Writer = io.Discard
	if c != nil {
		dst = c
	}
	if enc == '\r' {
		dst = &crlfToLF{w: dst}
	}
	if _, err := io.CopyN(dst, s.r, n); err != nil {
		s.protocolFailure(c, unexpected(err))
		return false
	}
	if cw, ok := dst.(*crlfToLF); ok {
		cw.flush()
	}
	if err := ReadComma(s.r); err != nil {
		s.protocolFailure(c, err)
		return false
	}
	sender, err := Read(s.r, maxAddrRead)
	if err != nil {
		s.protocolFailure(c, unexpected(err))
		return false
	}
	list, err := Read(s.r, maxRecipients)
	if err != nil {
		s.protocolFailure(c, unexpected(err))
		return false
	}
	inner := &limitedByteReader{r: bufio.NewReader(bytes.NewReader(list)), left: int64(len(list))}
	var rcpts []string
	for inner.left > 0 {
		a, err := readInner(inner, maxAddrRead)
		if err != nil {
			s.protocolFailure(c, err)
			return false
		}
		rcpts = append(rcpts, string(a))
	}
	if len(rcpts) == 0 {
		s.protocolFailure(c, protoErr("package without recipients"))
		return false
	}

	resp := make([]string, len(rcpts))
	if fail == "" && len(sender) >= queue.MaxAddr {
		fail = "D" + textAddrTooLong
	}
	if fail == "" {
		fail = s.checkRecipients(rcpts, resp)
	}
	var accepted []string
	for i, r := range rcpts {
		if fail == "" && resp[i] == "" {
			accepted = append(accepted, r)
		}
	}
	if c != nil {
		if len(accepted) == 0 {
			c.Fail()
			c.Close()
		} else {
			c.From(string(sender))
			relay, _ := s.cfg.env("RELAYCLIENT")
			for _, r := range accepted {
				c.To(r + relay)
			}
			if err := c.Close(); err != nil {
				var qe *queueclient.Error
				if errors.As(err, &qe) {
					fail = qe.Status()
				} else {
					fail = "Z" + textQueueOpen
				}
			} else {
				fail = "K" + s.queued(c)
			}
		}
	}
	for i := range rcpts {
		r := resp[i]
		if r == "" {
			r = fail
		}
		s.respond(r[0], r[1:])
	}
	return s.w.Flush() == nil
}

// checkRecipients fills resp with a D for every recipient refused (too long, or not
// in rcpthosts without RELAYCLIENT). It returns a failure for all of them when the
// control files cannot be read.
func (s *session) checkRecipients(rcpts, resp []string) string {
	_, relay := s.cfg.env("RELAYCLIENT")
	var m *rcpthosts.Matcher
	if !relay {
		var err error
		if m, err = rcpthosts.Open(s.cfg.Control.Path); err != nil {
			return "Z" + textControl
		}
		defer m.Close()
	}
	for i, r := range rcpts {
		if len(r) >= queue.MaxAddr {
			resp[i] = "D" + textAddrTooLong
			continue
		}
		if relay {
			continue
		}
		ok, err := m.CheckAddr(r)
		if err != nil {
			return "Z" + textControl
		}
		if !ok {
			resp[i] = "D" + textNotRcpthosts
		}
	}
	return ""
}

// crlfToLF turns CR LF into LF (QMTP's CRLF encoding); a CR not followed by LF stays.
type crlfToLF struct {
	w  io.Writer
	cr bool
}

func (c *crlfToLF) Write(p []byte) (int, error) {
	out := make([]byte, 0, len(p)+1)
	for _, b := range p {
		if c.cr && b != '\n' {
			out = append(out, '\r')
		}
		c.cr = b == '\r'
		if !c.cr {
			out = append(out, b)
		}
	}
	if _, err := c.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *crlfToLF) flush() {
	if c.cr {
		c.w.Write([]byte{'\r'})
		c.cr = false
	}
}

// ServeQMQP is qmail-qmqpd: it reads one netstring holding the message, the sender
// and the recipients, queues the message, answers once and returns. It does not check
// rcpthosts: a QMQP server serves the hosts its access rules let in.
func ServeQMQP(conn Conn, cfg ServerConfig) {
	s := newSession(conn, &cfg)
	s.deadline = time.Now().Add(QMQPSessionLimit)
	total, err := ReadLength(s.r, maxMessage)
	if err != nil {
		s.protocolFailure(nil, unexpected(err))
		return
	}
	outer := &limitedByteReader{r: s.r, left: total}
	n, err := ReadLength(outer, maxMessage)
	if err == nil && n > outer.left {
		err = protoErr("message netstring of %d bytes runs past the end of the package", n)
	}
	if err != nil {
		s.protocolFailure(nil, unexpected(err))
		return
	}
	fail := ""
	limit, err := s.cfg.databytes()
	switch {
	case err != nil:
		fail = "Z" + textControl
	case limit > 0 && n > limit:
		fail = "D" + textTooBig
	}
	var c *queueclient.Client
	if fail == "" {
		c, fail = s.openQueue("QMQP")
	}
	var dst io.Writer = io.Discard
	if c != nil {
		dst = c
	}
	if _, err := io.CopyN(dst, outer, n); err != nil {
		s.protocolFailure(c, unexpected(err))
		return
	}
	if err := ReadComma(outer); err != nil {
		s.protocolFailure(c, err)
		return
	}
	sender, err := readInner(outer, maxAddrRead)
	if err != nil {
		s.protocolFailure(c, err)
		return
	}
	if fail == "" && len(sender) >= queue.MaxAddr {
		fail = "D" + textAddrTooLong
	}
	if c != nil {
		c.From(string(sender))
	}
	rcpts := 0
	for outer.left > 0 {
		r, err := readInner(outer, maxAddrRead)
		if err != nil {
			s.protocolFailure(c, err)
			return
		}
		rcpts++
		if fail == "" && len(r) >= queue.MaxAddr {
			fail = "D" + textAddrTooLong
		}
		if c != nil {
			c.To(string(r))
		}
	}
	if err := ReadComma(s.r); err != nil {
		s.protocolFailure(c, err)
		return
	}
	if fail == "" && rcpts == 0 {
		fail = "D" + textNoRcpt
	}
	if c != nil {
		if fail != "" {
			c.Fail()
			c.Close()
		} else if err := c.Close(); err != nil {
			var qe *queueclient.Error
			if errors.As(err, &qe) {
				fail = qe.Status()
			} else {
				fail = "Z" + textQueueOpen
			}
		} else {
			fail = "K" + s.queued(c)
		}
	}
	s.respond(fail[0], fail[1:])
	s.w.Flush()
}
