// Package smtpd is qmail-smtpd's SMTP server: an RFC 5321 session over a connection,
// with qmail's control-file semantics (rcpthosts, RELAYCLIENT, localiphost,
// badmailfrom, databytes, smtpgreeting, timeoutsmtpd, the hop limit, the Received
// line), the ESMTP extensions SIZE, 8BITMIME, PIPELINING, ENHANCEDSTATUSCODES,
// SMTPUTF8 and AUTH (through checkpassword), strict CRLF handling against SMTP
// smuggling, recipient validation (control/validrcptdomains, badrcptto) and qmail-spp
// plugins (package spp).
//
// Serve runs a session from a Config; Load builds that Config from the control files
// and the environment; Run does both for one connection, as the qmail-smtpd program
// does under tcpserver (Stdio) or for each connection of the built-in listener
// (Listen, package listener).
//
// A session never buffers without a bound: command lines are limited, DATA is
// streamed to the queue as it arrives, and the recipient list is capped.
package smtpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/notqmail/notqmail/src/queueclient"
	"github.com/notqmail/notqmail/src/spp"
)

// Message is one message being queued; *queueclient.Client is one.
type Message interface {
	io.Writer
	Fail()              // abandon: nothing will be queued
	From(sender string) // end the data, start the envelope
	To(rcpt string)
	Close() error // queue it; a *queueclient.Error says why not
	PID() int
}

// Limits that keep a session's memory bounded.
const (
	MaxCommandLine   = 2048      // bytes of one command line with its CRLF
	DefaultMaxRcpts  = 1000      // recipients per message (RFC 5321 asks for at least 100)
	DefaultMaxHdr    = 1 << 20   // bytes of a message's header section
	maxErrors        = 50        // bad commands before the server hangs up
	maxLoggedRejects = 100       // refused recipients named in a transaction's log line
	maxPluginText    = 64 * 1024 // plugin headers per session, deferred replies per stage
	readBufferSize   = 16 * 1024
	maxHops          = 100 // Received and Delivered-To lines that make a loop (qmail's MAXHOPS)
)

// Config is one session's settings: the control files, the client's environment
// from tcpserver or the listener, and the hooks.
type Config struct {
	Greeting    string // control/smtpgreeting (its default is control/me)
	LocalIPHost string // control/localiphost (default control/me)

	// RcptHosts reports whether a domain (lowercase, ASCII: IDNA domains arrive as
	// A-labels; or an address literal) is in rcpthosts or morercpthosts.cdb. Nil
	// accepts no domain: only RELAYCLIENT clients can then give recipients.
	RcptHosts func(domain string) (bool, error)
	// LocalIP reports whether an address literal names this host (qmail's ipme);
	// such literals are replaced by LocalIPHost before the rcpthosts check.
	LocalIP func(netip.Addr) bool

	BadMailFrom []string // control/badmailfrom: addresses and @domains
	BadRcptTo   []string // control/badrcptto: addresses and @domains
	DataBytes   int64    // control/databytes or $DATABYTES; 0 means no limit

	// RelayClient is $RELAYCLIENT when RelaySet: the client may relay, and the
	// value is appended to each recipient.
	RelayClient string
	RelaySet    bool

	RemoteIP   string // $TCPREMOTEIP
	RemoteHost string // $TCPREMOTEHOST
	RemoteInfo string // $TCPREMOTEINFO
	LocalIPStr string // $TCPLOCALIP
	LocalHost  string // $TCPLOCALHOST

	Timeout time.Duration // control/timeoutsmtpd; 0 means none

	// Queue starts a message; normally queueclient.Config.Open.
	Queue func() (Message, error)

	// CheckRcpt validates a recipient the client may send to (after the relay and
	// badrcptto checks): nil accepts it, a *Reply rejects it, another error is a
	// temporary failure. Nil accepts every recipient.
	CheckRcpt func(addr string) error

	// Auth, when set, offers SMTP AUTH (PLAIN, LOGIN) on encrypted connections, and
	// on plain ones too when AuthWithoutTLS; a client that authenticates may relay,
	// as with RELAYCLIENT.
	Auth           Authenticator
	AuthWithoutTLS bool // control/authwithouttls
	// AuthLimit, when set, counts failed AUTHs per client address across sessions.
	AuthLimit *AuthLimiter
	// Submission requires AUTH before MAIL (RFC 6409), unless RELAYCLIENT was set
	// in the environment (a trusted client by the access rules).
	Submission bool

	// TLS, when set, offers STARTTLS; with ImplicitTLS the session starts with a
	// TLS handshake instead (port 465, RFC 8314).
	TLS         *tls.Config
	ImplicitTLS bool

	// Plugins, when set, are run at each stage as qmail-spp does.
	Plugins Plugins

	Log      io.Writer        // one line per session and per message; nil discards
	ID       string           // session id for the logs; default the process id
	MaxRcpts int              // default DefaultMaxRcpts
	MaxHdr   int64            // default DefaultMaxHdr
	Now      func() time.Time // the clock for Received lines, replies and logs (timeouts use the real one)
}

// Plugins runs a stage's qmail-spp plugins with the session's variables (set, and
// unset by earlier plugins) on top of the session's environment.
type Plugins func(stage spp.Stage, set map[string]string, unset map[string]bool) spp.Verdict

// Serve runs one SMTP session on conn until the client quits, hangs up, times out
// or breaks the protocol. If conn has SetReadDeadline and SetWriteDeadline (net.Conn
// and pollable files do), Timeout applies to every read and write.
func Serve(conn io.ReadWriter, cfg *Config) {
	s := newSession(conn, cfg)
	s.run()
	s.br.Reset(nil)
	s.bw.Reset(nil)
	readers.Put(s.br)
	writers.Put(s.bw)
}

// The sessions' buffers are reused: a listener would otherwise allocate and clear
// 20 KiB for every connection.
var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}
)

type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

type session struct {
	cfg      *Config
	conn     io.ReadWriter
	dl       deadliner
	br       *bufio.Reader
	bw       *bufio.Writer
	start    time.Time
	enhanced bool // the client saw ENHANCEDSTATUSCODES
	helo     string
	esmtp    bool
	errors   int

	relay     string
	relaySet  bool
	authUser  string
	authFails int
	tls       *tls.ConnectionState // nil until the handshake

	// the current transaction
	inMail         bool
	from           string
	utf8           bool
	barf           bool
	rcpts          []string
	rejected       []string
	rejectedN      int
	rcptAll        int
	headers        []string
	later          map[spp.Stage]string
	sessionHdrs    []string // plugin headers from connect: for every message
	heloHdrs       []string // plugin headers from the last HELO: for every message until the next
	pluginHdrBytes int
	unset          map[string]bool
	noPlugins      bool
	pluginEnv      map[string]string
	lastVerdict    spp.Verdict
	hangup         bool

	messages, accepted int
	end                string
}

func newSession(conn io.ReadWriter, cfg *Config) *session {
	s := &session{
		cfg:       cfg,
		conn:      conn,
		br:        readers.Get().(*bufio.Reader),
		bw:        writers.Get().(*bufio.Writer),
		relay:     cfg.RelayClient,
		relaySet:  cfg.RelaySet,
		pluginEnv: map[string]string{},
		later:     map[spp.Stage]string{},
		unset:     map[string]bool{},
	}
	s.br.Reset(conn)
	s.bw.Reset(conn)
	if d, ok := conn.(deadliner); ok {
		s.dl = d
	}
	if cfg.MaxRcpts <= 0 {
		cfg.MaxRcpts = DefaultMaxRcpts
	}
	if cfg.MaxHdr <= 0 {
		cfg.MaxHdr = DefaultMaxHdr
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ID == "" {
		cfg.ID = strconv.Itoa(os.Getpid())
	}
	s.start = cfg.Now()
	return s
}

// errHangup ends the session after the reply already sent.
var errHangup = errors.New("hang up")

func (s *session) run() {
	defer s.logSession()
	defer s.closeTLS()
	if s.cfg.ImplicitTLS {
		if s.cfg.TLS == nil {
			s.end = "no TLS certificate"
			s.logf("implicit TLS without a certificate: closing")
			return
		}
		if s.handshake() != nil {
			return
		}
	}
	if !s.plugins(spp.Connect, nil) {
		s.flush()
		return
	}
	s.reply(Reply{220, "", s.cfg.Greeting + " ESMTP"})
	for {
		line, err := s.readLine()
		switch {
		case err == errLineTooLong:
			s.reply(replyLineTooLong)
			if s.countError() {
				return
			}
			continue
		case err == errBare:
			s.end = "bare CR or LF"
			s.reply(replyBareCommand)
			s.flush()
			return
		case err != nil:
			s.ioEnd(err)
			return
		}
		if err := s.command(line); err != nil {
			if err != errHangup {
				s.ioEnd(err)
			}
			s.flush()
			return
		}
	}
}

// ioEnd records why the connection ended, answering a timeout as qmail does.
func (s *session) ioEnd(err error) {
	s.abandon()
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.end = "timeout"
		s.reply(replyTimeout)
		s.flush()
	case err == io.EOF:
		if s.end == "" {
			s.end = "client hung up"
		}
	default:
		if s.end == "" {
			s.end = "i/o error: " + err.Error()
		}
	}
}

func (s *session) countError() bool {
	s.errors++
	if s.errors >= maxErrors {
		s.end = "too many errors"
		s.reply(replyTooManyErrors)
		s.flush()
		return true
	}
	return false
}

func (s *session) reply(r Reply) {
	s.bw.WriteString(r.render(s.enhanced))
}

// rawReply sends a reply line written by a plugin, which carries its own code.
func (s *session) rawReply(line string) {
	s.bw.WriteString(sanitize(line) + "\r\n")
}

// sanitize makes text safe to send or log on one line: control characters become '?'.
func sanitize(t string) string {
	b := []byte(t)
	for i, c := range b {
		if c < ' ' || c == 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}

func (s *session) flush() error {
	if s.dl != nil && s.cfg.Timeout > 0 {
		s.dl.SetWriteDeadline(time.Now().Add(s.cfg.Timeout))
	}
	return s.bw.Flush()
}

// readLine reads one command line. Replies wait in the buffer while the client has
// more complete commands buffered (PIPELINING), and go out before the server waits.
func (s *session) readLine() (string, error) {
	if n := s.br.Buffered(); n == 0 || !bytes.Contains(peek(s.br, n), []byte("\n")) {
		if err := s.flush(); err != nil {
			return "", err
		}
	}
	s.setReadDeadline()
	return readCommandLine(s.br, MaxCommandLine)
}

func peek(br *bufio.Reader, n int) []byte {
	b, _ := br.Peek(n)
	return b
}

// setReadDeadline arms the timeout for the next read, and for writes too: a client
// that pipelines without reading makes the reply buffer flush on its own, and that
// write must not wait forever either.
func (s *session) setReadDeadline() {
	if s.dl != nil && s.cfg.Timeout > 0 {
		t := time.Now().Add(s.cfg.Timeout)
		s.dl.SetReadDeadline(t)
		s.dl.SetWriteDeadline(t)
	}
}

// command handles one command line; an error ends the session.
func (s *session) command(line string) error {
	verb, arg, _ := strings.Cut(line, " ")
	switch strings.ToUpper(verb) {
	case "HELO":
		return s.hello(arg, false)
	case "EHLO":
		return s.hello(arg, true)
	case "MAIL":
		return s.mail(arg)
	case "RCPT":
		return s.rcpt(arg)
	case "DATA":
		return s.data(arg)
	case "RSET":
		s.abandon()
		clear(s.later)
		s.reply(replyFlushed)
	case "NOOP":
		s.reply(replyOK)
	case "VRFY":
		s.reply(replyVrfy)
	case "HELP":
		s.reply(replyHelp)
	case "AUTH":
		return s.auth(arg)
	case "STARTTLS":
		return s.starttls(arg)
	case "QUIT":
		s.abandon()
		s.end = "quit"
		s.reply(Reply{221, "2.0.0", s.cfg.Greeting})
		return errHangup
	default:
		s.reply(replyUnimplemented)
		if s.countError() {
			return errHangup
		}
	}
	return nil
}

// plugins runs a stage's plugins and acts on what they say. It returns false when
// the command is answered (refused, or the connection is to close: s.hangup).
func (s *session) plugins(stage spp.Stage, extra map[string]string) bool {
	s.lastVerdict = spp.Verdict{}
	if s.cfg.Plugins == nil || s.noPlugins {
		return true
	}
	set := map[string]string{}
	for k, v := range s.pluginEnv {
		set[k] = v
	}
	for k, v := range extra {
		set[k] = v
	}
	v := s.cfg.Plugins(stage, set, s.unset)
	s.lastVerdict = v
	for _, k := range v.Unset {
		delete(s.pluginEnv, k)
		s.unset[k] = true
		if k == "RELAYCLIENT" {
			s.relay, s.relaySet = "", false
		}
	}
	for k, val := range v.Set {
		s.pluginEnv[k] = val
		delete(s.unset, k)
		if k == "RELAYCLIENT" {
			s.relay, s.relaySet = val, true
		}
	}
	for st, r := range v.Later {
		if prev := s.later[st]; prev != "" {
			if len(prev)+len(r) > maxPluginText {
				continue
			}
			r = prev + "\r\n" + r
		}
		s.later[st] = r
	}
	for _, h := range v.Headers {
		// Plugins may add headers on every RCPT; the total stays bounded.
		if s.pluginHdrBytes += len(h); s.pluginHdrBytes > maxPluginText {
			s.logf("plugin headers over %d bytes dropped", maxPluginText)
			break
		}
		switch stage {
		case spp.Connect:
			s.sessionHdrs = append(s.sessionHdrs, h)
		case spp.Helo:
			s.heloHdrs = append(s.heloHdrs, h)
		default:
			s.headers = append(s.headers, h)
		}
	}
	for _, p := range v.Print {
		s.rawReply(p)
	}
	if v.Disable {
		s.noPlugins = true
	}
	switch {
	case v.Err != nil:
		s.logf("plugin failure at %s: %s", stage, sanitize(v.Err.Error()))
		s.reply(Reply{451, "4.3.0", "qmail-spp failure: " + sanitize(v.Err.Error())})
		return false
	case v.Hangup:
		s.end = "dropped by plugin at " + string(stage)
		s.hangup = true
		return false
	case v.Refuse:
		return false
	}
	return true
}

// laterReply answers a command with an error a plugin scheduled for it.
func (s *session) laterReply(stage spp.Stage) bool {
	r, ok := s.later[stage]
	if !ok {
		return false
	}
	for _, l := range strings.Split(r, "\r\n") {
		s.rawReply(l)
	}
	return true
}

func (s *session) hello(arg string, esmtp bool) error {
	arg = strings.TrimLeft(arg, " ")
	s.helo = arg
	s.abandon()
	clear(s.later)
	s.forgetHelo()
	if !s.plugins(spp.Helo, map[string]string{"SMTPHELOHOST": arg}) {
		return s.afterPlugins()
	}
	s.pluginEnv["SMTPHELOHOST"] = arg
	s.esmtp = esmtp
	if !esmtp {
		s.reply(Reply{250, "", s.cfg.Greeting})
		return nil
	}
	s.enhanced = true
	size := "SIZE"
	if s.cfg.DataBytes > 0 {
		size = "SIZE " + strconv.FormatInt(s.cfg.DataBytes, 10)
	}
	exts := []string{s.cfg.Greeting, "PIPELINING", "8BITMIME", size, "ENHANCEDSTATUSCODES", "SMTPUTF8"}
	if s.cfg.TLS != nil && s.tls == nil {
		exts = append(exts, "STARTTLS")
	}
	if s.authOffered() {
		exts = append(exts, "AUTH LOGIN PLAIN")
	}
	s.reply(Reply{250, "", strings.Join(exts, "\n")})
	return nil
}

// afterPlugins is the result of a command the plugins answered.
func (s *session) afterPlugins() error {
	if s.hangup {
		return errHangup
	}
	return nil
}

func (s *session) mail(arg string) error {
	if s.inMail {
		s.reply(replyNested)
		return nil
	}
	if !hasPrefixFold(arg, "FROM:") {
		s.reply(replyArgSyntax)
		return nil
	}
	if s.cfg.Submission && s.authUser == "" && !s.cfg.RelaySet {
		s.reply(replyAuthRequired)
		return nil
	}
	p, ok := parsePath(arg[5:])
	if !ok {
		s.reply(replySyntax)
		return nil
	}
	utf8 := false
	for _, prm := range p.params {
		key, val, _ := strings.Cut(prm, "=")
		switch strings.ToUpper(key) {
		case "SIZE":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n < 0 {
				s.reply(replyArgSyntax)
				return nil
			}
			if s.cfg.DataBytes > 0 && n > s.cfg.DataBytes {
				s.reply(replyTooBig)
				return nil
			}
		case "BODY":
			if !strings.EqualFold(val, "7BIT") && !strings.EqualFold(val, "8BITMIME") {
				s.reply(replyArgSyntax)
				return nil
			}
		case "SMTPUTF8":
			if val != "" || prm != key {
				s.reply(replyArgSyntax)
				return nil
			}
			utf8 = true
		case "AUTH":
			// RFC 4954's AUTH=<mailbox>: accepted where AUTH is offered, and
			// ignored, as the authenticated user is what counts.
			if !s.authOffered() || val == "" {
				s.reply(replyBadParam)
				return nil
			}
		default:
			s.reply(replyBadParam)
			return nil
		}
	}
	if r, ok := checkText(p.addr, utf8); !ok {
		s.reply(r)
		return nil
	}
	if s.laterReply(spp.Mail) {
		return nil
	}
	if !s.plugins(spp.Mail, map[string]string{"SMTPMAILFROM": p.addr}) {
		return s.afterPlugins()
	}
	if c := s.lastVerdict.Change; c != "" {
		p.addr = c
	}
	s.inMail = true
	s.from = p.addr
	s.utf8 = utf8
	s.pluginEnv["SMTPMAILFROM"] = p.addr
	s.barf = !s.lastVerdict.NoChecks && listed(s.cfg.BadMailFrom, p.addr)
	s.reply(replyMailOK)
	return nil
}

// listed is qmail's badmailfrom match: the address, or "@" and its domain, in the
// list, ignoring case.
func listed(list []string, addr string) bool {
	dom := ""
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		dom = addr[at:]
	}
	for _, l := range list {
		if strings.EqualFold(l, addr) || dom != "" && strings.EqualFold(l, dom) {
			return true
		}
	}
	return false
}

func (s *session) rcpt(arg string) error {
	if !s.inMail {
		s.reply(replyWantMail)
		return nil
	}
	if !hasPrefixFold(arg, "TO:") {
		s.reply(replyArgSyntax)
		return nil
	}
	p, ok := parsePath(arg[3:])
	if !ok || p.addr == "" {
		s.reply(replySyntax)
		return nil
	}
	if len(p.params) > 0 {
		s.reply(replyBadParam)
		return nil
	}
	if r, ok := checkText(p.addr, s.utf8); !ok {
		s.reply(r)
		return nil
	}
	s.rcptAll++
	if s.laterReply(spp.Rcpt) {
		s.noteRejected(p.addr)
		return nil
	}
	if s.barf {
		s.reject(p.addr, replyBMF)
		return nil
	}
	p = s.localIPHost(p)
	allowed, err := s.relayAllowed(p)
	if err != nil {
		s.logf("rcpthosts failure: %s", sanitize(err.Error()))
		s.reject(p.addr, Reply{451, "4.3.0", "unable to read controls"})
		return nil
	}
	env := map[string]string{
		"SMTPRCPTTO":       p.addr,
		"SMTPRCPTCOUNTALL": strconv.Itoa(s.rcptAll),
		"SMTPRCPTCOUNT":    strconv.Itoa(len(s.rcpts)),
		"SMTPRCPTHOSTSOK":  "0",
	}
	if allowed == nil || s.relaySet {
		env["SMTPRCPTHOSTSOK"] = "1"
	}
	if !s.plugins(spp.Rcpt, env) {
		s.noteRejected(p.addr)
		return s.afterPlugins()
	}
	addr := p.addr
	if c := s.lastVerdict.Change; c != "" {
		addr = c
	}
	if !s.lastVerdict.NoChecks {
		if s.relaySet {
			addr += s.relay
		} else if allowed != nil {
			s.reject(addr, *allowed)
			return nil
		}
		if listed(s.cfg.BadRcptTo, addr) {
			s.reject(addr, replyBRT)
			return nil
		}
		if s.cfg.CheckRcpt != nil {
			if err := s.cfg.CheckRcpt(addr); err != nil {
				var r *Reply
				if errors.As(err, &r) {
					s.reject(addr, *r)
				} else {
					s.logf("recipient check failure for %s: %s", strconv.Quote(addr), sanitize(err.Error()))
					s.reject(addr, replyCheckFailed)
				}
				return nil
			}
		}
	}
	if len(s.rcpts) >= s.cfg.MaxRcpts {
		s.reject(addr, replyTooManyRcpts)
		return nil
	}
	s.rcpts = append(s.rcpts, addr)
	s.pluginEnv["SMTPRCPTTO"] = addr
	s.reply(replyRcptOK)
	return nil
}

// Error lets a Reply be returned by CheckRcpt.
func (r *Reply) Error() string { return r.String() }

// noteRejected keeps a refused recipient for the transaction's log line; past
// maxLoggedRejects only the count grows, so a client cannot grow the list forever.
func (s *session) noteRejected(addr string) {
	s.rejectedN++
	if len(s.rejected) < maxLoggedRejects {
		s.rejected = append(s.rejected, addr)
	}
}

func (s *session) reject(addr string, r Reply) {
	s.noteRejected(addr)
	s.reply(r)
}

// localIPHost replaces an address literal naming this host with localiphost, as
// qmail-smtpd does before the rcpthosts check.
func (s *session) localIPHost(p path) path {
	a, ok := literalAddr(p.domain)
	if !ok || s.cfg.LocalIP == nil || !s.cfg.LocalIP(a) || s.cfg.LocalIPHost == "" {
		return p
	}
	p.domain = s.cfg.LocalIPHost
	p.addr = p.local + "@" + p.domain
	return p
}

// relayAllowed returns nil when every domain the address could be routed to is in
// rcpthosts, else the rejection.
func (s *session) relayAllowed(p path) (*Reply, error) {
	for i, d := range routeDomains(p.local, p.domain) {
		ok := false
		if d != "" {
			a, err := asciiDomain(d)
			if err != nil {
				r := replySyntax
				return &r, nil
			}
			// rcpthosts may list an internationalized domain as its A-label or
			// its U-label: try both.
			forms := []string{a}
			if u, decoded := unicodeDomain(a); decoded && u != a {
				forms = append(forms, u)
			}
			for _, f := range forms {
				if s.cfg.RcptHosts == nil || ok {
					break
				}
				if ok, err = s.cfg.RcptHosts(f); err != nil {
					return nil, err
				}
			}
		}
		if !ok {
			r := replyNoRelay
			if i > 0 || p.domain == "" {
				r = replyRelayForm
			}
			return &r, nil
		}
	}
	return nil, nil
}

func (s *session) data(arg string) error {
	if !s.inMail {
		s.reply(replyWantMail)
		return nil
	}
	if len(s.rcpts) == 0 {
		s.reply(replyWantRcpt)
		return nil
	}
	if strings.TrimSpace(arg) != "" {
		s.reply(replyArgSyntax)
		return nil
	}
	if s.laterReply(spp.Data) {
		return nil
	}
	if !s.plugins(spp.Data, nil) {
		return s.afterPlugins()
	}
	s.messages++
	var msg Message
	var err error
	if s.cfg.Queue != nil {
		msg, err = s.cfg.Queue()
	} else {
		err = errors.New("no queue configured")
	}
	if err != nil {
		s.logMessage(0, 0, replyQueueFailed, "queue start: "+err.Error())
		s.reply(replyQueueFailed)
		s.resetTransaction()
		return nil
	}
	s.reply(replyGoAhead)
	if err := s.flush(); err != nil {
		msg.Fail()
		msg.Close()
		return err
	}
	w := &queueWriter{msg: msg}
	io.WriteString(w, s.received())
	for _, h := range append(append(append([]string(nil), s.sessionHdrs...), s.heloHdrs...), s.headers...) {
		io.WriteString(w, sanitize(h)+"\n")
	}
	res := readData(s.br, w, dataLimits{maxBytes: s.cfg.DataBytes, maxHeader: s.cfg.MaxHdr}, s.setReadDeadline)
	var r Reply
	switch {
	case res.err != nil || res.bare:
		msg.Fail()
		msg.Close()
		r = replyBareData
		note := "bare CR or LF in data"
		if res.err != nil {
			note = "connection lost in data: " + res.err.Error()
		}
		s.logMessage(msg.PID(), res.size, r, note)
		s.resetTransaction()
		if res.err != nil {
			return res.err
		}
		s.end = "bare CR or LF in data"
		s.reply(r)
		return errHangup
	case res.tooBig:
		r = replyTooBig
	case res.headerTooBig:
		r = replyHeaderTooBig
	case res.hops >= maxHops:
		r = replyHops
	}
	// The pid once: with qmail-queued it is a getpid call each time.
	var pid int
	if r.Code != 0 {
		msg.Fail()
		msg.Close()
		pid = msg.PID()
	} else {
		msg.From(s.from)
		for _, rc := range s.rcpts {
			msg.To(rc)
		}
		err := msg.Close()
		pid = msg.PID()
		r = queueReply(err, pid, s.cfg.Now())
	}
	if r.Code == 250 {
		s.accepted++
	}
	s.logMessage(pid, res.size, r, "")
	s.reply(r)
	s.resetTransaction()
	return nil
}

// queueWriter remembers the first write error and drops later writes, so reading
// DATA continues to its end and the client gets qmail-queue's verdict.
type queueWriter struct {
	msg Message
	err error
}

func (q *queueWriter) Write(p []byte) (int, error) {
	if q.err == nil {
		_, q.err = q.msg.Write(p)
	}
	return len(p), nil
}

// queueReply turns qmail-queue's result into qmail-smtpd's reply.
func queueReply(err error, pid int, now time.Time) Reply {
	if err == nil {
		return Reply{250, "2.0.0", fmt.Sprintf("ok %d qp %d", now.Unix(), pid)}
	}
	var qe *queueclient.Error
	if !errors.As(err, &qe) {
		return Reply{451, "4.3.0", "qq temporary problem"}
	}
	text, enh := splitEnh(sanitize(qe.Text))
	r := Reply{451, enh, text}
	if qe.Permanent {
		r.Code = 554
	}
	if r.Enh == "" {
		if qe.Permanent {
			r.Enh = "5.3.0"
		} else {
			r.Enh = "4.3.0"
		}
	}
	return r
}

// splitEnh takes the "(#x.y.z)" off the end of a qmail text.
func splitEnh(t string) (text, enh string) {
	if strings.HasSuffix(t, ")") {
		if i := strings.LastIndex(t, " (#"); i >= 0 {
			code := t[i+3 : len(t)-1]
			if validEnh(code) {
				return t[:i], code
			}
		}
	}
	return t, ""
}

func validEnh(c string) bool {
	parts := strings.Split(c, ".")
	if len(parts) != 3 || (parts[0] != "2" && parts[0] != "4" && parts[0] != "5") {
		return false
	}
	for _, p := range parts[1:] {
		if p == "" || len(p) > 3 {
			return false
		}
		for _, ch := range p {
			if ch < '0' || ch > '9' {
				return false
			}
		}
	}
	return true
}

// abandon ends a transaction that did not reach the queue, logging it.
func (s *session) abandon() {
	if s.inMail {
		s.logMessage(0, 0, Reply{}, "abandoned")
	}
	s.resetTransaction()
}

func (s *session) resetTransaction() {
	s.inMail = false
	s.from = ""
	s.utf8 = false
	s.barf = false
	s.rcpts = nil
	s.rejected = nil
	s.rejectedN = 0
	s.rejectedN = 0
	s.rcptAll = 0
	for _, h := range s.headers {
		s.pluginHdrBytes -= len(h)
	}
	s.headers = nil
	delete(s.pluginEnv, "SMTPMAILFROM")
	delete(s.pluginEnv, "SMTPRCPTTO")
}

// forgetHelo drops what the [helo] plugins added for the previous HELO: a new HELO
// replaces it, and STARTTLS discards it with everything said in plain text.
func (s *session) forgetHelo() {
	for _, h := range s.heloHdrs {
		s.pluginHdrBytes -= len(h)
	}
	s.heloHdrs = nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
