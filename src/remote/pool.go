package remote

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Pool keeps SMTP connections open for a short while after a message was accepted,
// so that the next delivery to the same server skips the connection, the greeting,
// EHLO and STARTTLS. It is for a long-running deliverer (qmail-rspawn delivering in
// process); qmail-remote itself, one delivery per process, has none.
//
// A connection is only reused for a delivery that would have made the same
// connection: the same server address and port, server name (SNI and certificate
// verification), helo host, TLS policy, source address and client certificate. A
// reused connection that fails before the server accepts MAIL FROM (closed, 421,
// timed out) is dropped and the delivery goes to a new connection, so a stale
// connection never turns into a bounce or a deferral.
//
// A Pool is safe for concurrent use; the zero value is ready, with the defaults.
type Pool struct {
	// IdleTime is how long an unused connection stays open; 0 means 5 seconds.
	IdleTime time.Duration
	// MaxPerServer bounds the idle connections kept per key; 0 means 32.
	MaxPerServer int
	// MaxIdle bounds the idle connections kept in all; 0 means 128.
	MaxIdle int
	// ReplyTimeout bounds the wait for the reply to MAIL FROM on a reused
	// connection, after which it counts as stale; 0 means 20 seconds (Postfix's
	// smtp_rset_timeout), or timeoutremote if that is shorter.
	ReplyTimeout time.Duration

	mu     sync.Mutex
	idle   map[poolKey][]*idleConn
	n      int
	closed bool
	quits  sync.WaitGroup // QUITs in progress
}

// poolKey is what a connection's reuse depends on.
type poolKey struct {
	addr   netip.AddrPort
	host   string // the server's name: SNI and certificate verification
	helo   string
	policy string            // the TLS policy, formatted
	source string            // the local address asked for, or ""
	cert   [sha256.Size]byte // the client certificate's digest (zero: none)
	roots  *x509.CertPool
}

type idleConn struct {
	s     *session
	timer *time.Timer
}

func (p *Pool) idleTime() time.Duration {
	if p.IdleTime > 0 {
		return p.IdleTime
	}
	return 5 * time.Second
}

func (p *Pool) replyTimeout() time.Duration {
	if p.ReplyTimeout > 0 {
		return p.ReplyTimeout
	}
	return 20 * time.Second
}

func (p *Pool) maxPerServer() int {
	if p.MaxPerServer > 0 {
		return p.MaxPerServer
	}
	return 32
}

func (p *Pool) maxIdle() int {
	if p.MaxIdle > 0 {
		return p.MaxIdle
	}
	return 128
}

// errStale is a reused connection's failure before MAIL FROM was accepted.
var errStale = errors.New("reused connection failed before MAIL FROM")

// put keeps s for key. It reports false when the pool is closed or full, and the
// caller then closes the connection.
func (p *Pool) put(key poolKey, s *session) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.n >= p.maxIdle() || len(p.idle[key]) >= p.maxPerServer() {
		return false
	}
	if p.idle == nil {
		p.idle = map[poolKey][]*idleConn{}
	}
	ic := &idleConn{s: s}
	ic.timer = time.AfterFunc(p.idleTime(), func() { p.expire(key, ic) })
	p.idle[key] = append(p.idle[key], ic)
	p.n++
	return true
}

// get takes the most recently used live connection for key, or returns nil.
func (p *Pool) get(key poolKey) *session {
	for {
		p.mu.Lock()
		list := p.idle[key]
		if len(list) == 0 {
			p.mu.Unlock()
			return nil
		}
		ic := list[len(list)-1]
		list[len(list)-1] = nil
		p.idle[key] = list[:len(list)-1]
		if len(list) == 1 {
			delete(p.idle, key)
		}
		p.n--
		p.mu.Unlock()
		// Taken off the list, it is ours even if its timer just fired: expire
		// only ends connections it still finds on the list.
		ic.timer.Stop()
		if alive(ic.s.raw) {
			return ic.s
		}
		ic.s.conn.Close() // the server closed it or said something (421) on its own
	}
}

// expire ends a connection that stayed unused for IdleTime.
func (p *Pool) expire(key poolKey, ic *idleConn) {
	p.mu.Lock()
	list := p.idle[key]
	found := false
	for i, c := range list {
		if c == ic {
			p.idle[key] = append(list[:i], list[i+1:]...)
			if len(p.idle[key]) == 0 {
				delete(p.idle, key)
			}
			p.n--
			found = true
			break
		}
	}
	if found {
		p.quits.Add(1)
	}
	p.mu.Unlock()
	if found {
		defer p.quits.Done()
		quitIdle(ic.s)
	}
}

// Close sends QUIT on every idle connection and closes them; connections handed back
// later are closed at once. It returns when every QUIT is done.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	var all []*idleConn
	for _, list := range p.idle {
		for _, ic := range list {
			ic.timer.Stop() // a timer that fired finds nothing: the list is gone
			all = append(all, ic)
		}
	}
	p.idle = nil
	p.n = 0
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, ic := range all {
		wg.Add(1)
		go func() { defer wg.Done(); quitIdle(ic.s) }()
	}
	wg.Wait()
	p.quits.Wait()
}

// Idle returns how many connections the pool holds.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// quitIdle ends an idle connection politely: QUIT, its reply awaited briefly.
func quitIdle(s *session) {
	s.dc.timeout = 2 * time.Second
	s.w.WriteString("QUIT\r\n")
	if s.w.Flush() == nil {
		readReply(s.r)
	}
	s.conn.Close()
}

// alive reports whether an idle connection is still open with nothing unread: a
// server that closed it, or announced its end (421), has left something to read.
func alive(c net.Conn) bool {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return true // not TCP (tests): the stale-connection retry still applies
	}
	// The last read's deadline may have passed while idle (a short timeoutremote).
	tc.SetReadDeadline(time.Time{})
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		ok = err == unix.EAGAIN || err == unix.EWOULDBLOCK
		return true
	})
	return err == nil && ok
}

// reuse runs the transaction on a pooled connection for key. ok is false when there
// is none, or when it turned out stale; the delivery then takes a new connection.
func (p *Pool) reuse(key poolKey, sc sessionConfig) (out Outcome, ok bool) {
	s := p.get(key)
	if s == nil {
		return Outcome{}, false
	}
	s.cfg.Envelope, s.cfg.Message = sc.Envelope, sc.Message
	s.cfg.Timeout = sc.Timeout
	s.dc.timeout = sc.Timeout
	s.dc.readTimeout = min(p.replyTimeout(), sc.Timeout)
	s.critical, s.mailSent, s.keep, s.reused = false, false, false, true
	out, err := s.transaction()
	if errors.Is(err, errStale) {
		s.keep = false
		s.conn.Close()
		s.waitWriter()
		return Outcome{}, false
	}
	s.finish(key)
	if err != nil {
		return s.failed(err), true
	}
	return out, true
}

// key is the pool key for a connection to addr:port for server host.
func (cfg *Config) poolKey(domain, host string, addr netip.Addr, port int, pol TLSPolicy) poolKey {
	k := poolKey{
		addr:   netip.AddrPortFrom(addr, uint16(port)),
		host:   host,
		helo:   cfg.Helo,
		policy: fmt.Sprintf("%v", pol),
		roots:  cfg.RootCAs,
	}
	// By content, not pointer: the control files are read again every few
	// seconds, and the same certificate must still find its connections.
	if c := cfg.ClientCert; c != nil && len(c.Certificate) > 0 {
		k.cert = sha256.Sum256(c.Certificate[0])
	}
	if src := cfg.source(domain, addr); src != nil {
		k.source = src.String()
	}
	return k
}
