package remote

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// pooledConfig is relayConfig with a connection pool.
func pooledConfig(port int, p *Pool) *Config {
	cfg := relayConfig(port)
	cfg.TLSPolicies = PolicyFile{{domain: "", pol: TLSPolicy{Mode: TLSNone}}}
	cfg.Pool = p
	return cfg
}

// waitFor polls cond; a deadlock guard, not a timing expectation.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("gave up waiting for %s", what)
}

// TestPoolReusesConnectionToSink sends several messages one after another to
// smtp-sink through a counting proxy: one connection carries them all, each message
// arrives, the reports are those of unpooled deliveries, and closing the pool QUITs.
func TestPoolReusesConnectionToSink(t *testing.T) {
	s := startSink(t)
	rec := startRecorder(t, fmt.Sprintf("127.0.0.1:%d", s.Port))
	p := &Pool{}
	cfg := pooledConfig(portOf(rec.Addr), p)
	plain := pooledConfig(portOf(rec.Addr), nil)
	const n = 6
	for i := 0; i < n; i++ {
		out := deliver(t, cfg, "s@c.test", []string{fmt.Sprintf("r%d@example.test", i)}, fmt.Sprintf("Subject: %d\n\nbody %d\n", i, i))
		if out.Status != MsgOK || len(out.Recipients) != 1 || out.Recipients[0].Status != RcptOK {
			t.Fatalf("delivery %d: %s", i, out)
		}
		if want := deliver(t, plain, "s@c.test", []string{"x@example.test"}, "Subject: x\n\nx\n"); want.String() != out.String() {
			t.Errorf("pooled report %q differs from unpooled %q", out.String(), want.String())
		}
	}
	// n pooled deliveries on one connection, n unpooled ones on a connection each.
	if got := rec.Conns(); got != n+1 {
		t.Errorf("%d connections for %d pooled and %d unpooled deliveries, want %d", got, n, n, n+1)
	}
	if p.Idle() != 1 {
		t.Errorf("pool holds %d connections, want 1", p.Idle())
	}
	p.Close()
	if p.Idle() != 0 {
		t.Errorf("pool holds %d connections after Close", p.Idle())
	}
	// QUIT once per unpooled delivery, and once for the pooled connection.
	waitFor(t, "the QUIT of Close", func() bool { return strings.Count(rec.Sent(), "QUIT\r\n") == n+1 })
	waitFor(t, "2n messages in the sink", func() bool { return len(s.Messages(t)) == 2*n })
	// A closed pool keeps nothing: the next delivery QUITs its own connection.
	if out := deliver(t, cfg, "s@c.test", []string{"late@example.test"}, "Subject: late\n\nlate\n"); out.Status != MsgOK {
		t.Fatalf("after Close: %s", out)
	}
	if p.Idle() != 0 {
		t.Errorf("a closed pool took a connection")
	}
	waitFor(t, "the late delivery's QUIT", func() bool { return strings.Count(rec.Sent(), "QUIT\r\n") == n+2 })
}

// TestPoolIdleExpiry: an unused connection is QUIT and closed after IdleTime.
func TestPoolIdleExpiry(t *testing.T) {
	s := startSink(t)
	rec := startRecorder(t, fmt.Sprintf("127.0.0.1:%d", s.Port))
	p := &Pool{IdleTime: 100 * time.Millisecond}
	defer p.Close()
	if out := deliver(t, pooledConfig(portOf(rec.Addr), p), "s@c.test", []string{"r@example.test"}, "Subject: x\n\nx\n"); out.Status != MsgOK {
		t.Fatal(out)
	}
	waitFor(t, "the idle connection's QUIT", func() bool { return strings.Contains(rec.Sent(), "QUIT\r\n") && p.Idle() == 0 })
}

// fakeServer is a scripted SMTP server on 127.0.0.1 for what smtp-sink cannot do:
// react to the how-manyth transaction on a connection.
type fakeServer struct {
	addr string
	// afterAccept runs after a message was accepted on conn (tx counts from 1); it
	// returns false to drop the connection.
	afterAccept func(conn net.Conn, tx int) bool
	// mailReply is the reply to MAIL FROM for transaction tx; "" means 250.
	mailReply func(tx int) string

	mu       sync.Mutex
	conns    int
	accepted int
}

func startFake(t *testing.T, f *fakeServer) *fakeServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f.addr = l.Addr().String()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeServer) counts() (conns, accepted int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns, f.accepted
}

func (f *fakeServer) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	say := func(s string) { fmt.Fprintf(c, "%s\r\n", s) }
	say("220 fake ESMTP")
	tx := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		switch verb {
		case "EHLO":
			say("250-fake\r\n250 8BITMIME")
		case "MAIL":
			tx++
			rep := ""
			if f.mailReply != nil {
				rep = f.mailReply(tx)
			}
			if rep == "" {
				rep = "250 ok"
			}
			say(rep)
			if strings.HasPrefix(rep, "421") {
				return
			}
		case "RCPT":
			say("250 ok")
		case "DATA":
			say("354 go")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			f.mu.Lock()
			f.accepted++
			f.mu.Unlock()
			say(fmt.Sprintf("250 accepted %d", tx))
			if f.afterAccept != nil && !f.afterAccept(c, tx) {
				return
			}
		case "QUIT":
			say("221 bye")
			return
		default:
			say("502 what")
		}
	}
}

// TestPoolServerClosedIdleConnection: a server that drops the connection after each
// message leaves a dead connection in the pool; the next delivery still succeeds, on
// a new connection.
func TestPoolServerClosedIdleConnection(t *testing.T) {
	f := startFake(t, &fakeServer{afterAccept: func(net.Conn, int) bool { return false }})
	p := &Pool{}
	defer p.Close()
	cfg := pooledConfig(portOf(f.addr), p)
	for i := 0; i < 3; i++ {
		if _, accepted := f.counts(); i > 0 {
			waitFor(t, "the server to drop the connection", func() bool { return accepted == i })
		}
		out := deliver(t, cfg, "s@c.test", []string{"r@example.test"}, "Subject: x\n\nx\n")
		if out.Status != MsgOK || !strings.HasPrefix(out.Text, "127.0.0.1 accepted message.\nRemote host said: 250 accepted 1\n") {
			t.Fatalf("delivery %d: %s", i, out)
		}
	}
	if conns, accepted := f.counts(); conns != 3 || accepted != 3 {
		t.Errorf("%d connections, %d messages; want 3 and 3", conns, accepted)
	}
}

// TestPoolServer421WhileIdle: a server that announces its end (421) on an idle
// connection without closing it; the pool notices and delivers on a new connection.
func TestPoolServer421WhileIdle(t *testing.T) {
	said := make(chan bool, 10)
	f := startFake(t, &fakeServer{afterAccept: func(c net.Conn, tx int) bool {
		fmt.Fprintf(c, "421 idle too long\r\n")
		said <- true
		return true // keep it open: only the unsolicited reply tells
	}})
	p := &Pool{}
	defer p.Close()
	cfg := pooledConfig(portOf(f.addr), p)
	for i := 0; i < 2; i++ {
		out := deliver(t, cfg, "s@c.test", []string{"r@example.test"}, "Subject: x\n\nx\n")
		if out.Status != MsgOK {
			t.Fatalf("delivery %d: %s", i, out)
		}
		<-said
	}
	if conns, accepted := f.counts(); conns != 2 || accepted != 2 {
		t.Errorf("%d connections, %d messages; want 2 and 2", conns, accepted)
	}
}

// TestPoolStaleAtMail: a reused connection whose server refuses MAIL FROM (421, or a
// temporary 451) is not the delivery's failure: it is retried once on a new
// connection, where the server accepts it.
func TestPoolStaleAtMail(t *testing.T) {
	for _, rep := range []string{"421 4.4.2 closing, too many messages", "451 4.3.0 try later"} {
		f := startFake(t, &fakeServer{mailReply: func(tx int) string {
			if tx > 1 {
				return rep
			}
			return ""
		}})
		p := &Pool{}
		cfg := pooledConfig(portOf(f.addr), p)
		for i := 0; i < 3; i++ {
			out := deliver(t, cfg, "s@c.test", []string{"r@example.test"}, "Subject: x\n\nx\n")
			if out.Status != MsgOK {
				t.Fatalf("%q: delivery %d: %s", rep, i, out)
			}
		}
		if conns, accepted := f.counts(); conns != 3 || accepted != 3 {
			t.Errorf("%q: %d connections, %d messages; want 3 and 3", rep, conns, accepted)
		}
		p.Close()
	}
}

// TestPoolKeyedByHelo: a connection greeted with one helo host is not used for a
// delivery that would greet with another.
func TestPoolKeyedByHelo(t *testing.T) {
	f := startFake(t, &fakeServer{})
	p := &Pool{}
	defer p.Close()
	a := pooledConfig(portOf(f.addr), p)
	b := pooledConfig(portOf(f.addr), p)
	b.Helo = "other.example.test"
	for _, cfg := range []*Config{a, b, a, b} {
		if out := deliver(t, cfg, "s@c.test", []string{"r@example.test"}, "Subject: x\n\nx\n"); out.Status != MsgOK {
			t.Fatal(out)
		}
	}
	if conns, _ := f.counts(); conns != 2 {
		t.Errorf("%d connections for two helo hosts, want 2", conns)
	}
}

// TestPoolTLSToPostfix: a verified TLS connection to Postfix carries several messages,
// each report recording the TLS as a new connection's would; a delivery under
// another TLS policy (a pin, a wrong pin) never gets that connection, so the policy
// is enforced as without a pool.
func TestPoolTLSToPostfix(t *testing.T) {
	pf := startPostfix(t)
	rec := startRecorder(t, fmt.Sprintf("127.0.0.1:%d", pf.Port))
	p := &Pool{}
	defer p.Close()
	cfg := relayConfig(portOf(rec.Addr))
	cfg.RootCAs = pf.CA.Pool
	cfg.Pool = p
	for i := 0; i < 3; i++ {
		out := deliver(t, cfg, "s@client.example.test", []string{"ok@example.test"}, "Subject: tls\n\nhello\n")
		if out.Status != MsgOK || !strings.HasSuffix(out.Text, "\nTLS verified (TLS1.3, 127.0.0.1).\n") {
			t.Fatalf("delivery %d: %s", i, out)
		}
	}
	if c := rec.Conns(); c != 1 {
		t.Errorf("%d connections for 3 messages, want 1", c)
	}
	sum := sha256.Sum256(pf.CA.Leaf.Raw)
	cfg.TLSPolicies = PolicyFile{{domain: ".test", pol: TLSPolicy{Mode: TLSVerify, Pins: [][32]byte{sum}}}}
	out := deliver(t, cfg, "s@client.example.test", []string{"ok@example.test"}, "Subject: tls\n\nhello\n")
	if out.Status != MsgOK || !strings.Contains(out.Text, "TLS verified (TLS1.3, pinned ") {
		t.Fatalf("pinned: %s", out)
	}
	sum[0] ^= 1
	cfg.TLSPolicies = PolicyFile{{domain: ".test", pol: TLSPolicy{Mode: TLSVerify, Pins: [][32]byte{sum}}}}
	out = deliver(t, cfg, "s@client.example.test", []string{"ok@example.test"}, "Subject: tls\n\nhello\n")
	if out.Status != MsgTemp || !strings.Contains(out.Text, "is not pinned") {
		t.Fatalf("wrong pin got through: %s", out)
	}
	if c := rec.Conns(); c != 3 {
		t.Errorf("%d connections for three TLS policies, want 3", c)
	}
}

// TestPoolSilentServer: a reused connection whose server never answers MAIL FROM
// counts as stale after ReplyTimeout, and the delivery succeeds on a new connection.
func TestPoolSilentServer(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	f := startFake(t, &fakeServer{mailReply: func(tx int) string {
		if tx > 1 {
			<-hang // silent until the test ends
		}
		return ""
	}})
	p := &Pool{ReplyTimeout: 200 * time.Millisecond}
	defer p.Close()
	cfg := pooledConfig(portOf(f.addr), p)
	for i := 0; i < 2; i++ {
		if out := deliver(t, cfg, "s@c.test", []string{"r@example.test"}, "Subject: x\n\nx\n"); out.Status != MsgOK {
			t.Fatalf("delivery %d: %s", i, out)
		}
	}
	if conns, accepted := f.counts(); conns != 2 || accepted != 2 {
		t.Errorf("%d connections, %d messages; want 2 and 2", conns, accepted)
	}
}

// TestPoolShortTimeoutRemote: with a timeoutremote shorter than the idle time, the
// connection's last deadline passes while it is idle; it is still reused.
func TestPoolShortTimeoutRemote(t *testing.T) {
	f := startFake(t, &fakeServer{})
	p := &Pool{}
	defer p.Close()
	cfg := pooledConfig(portOf(f.addr), p)
	cfg.Timeout = 300 * time.Millisecond
	for i := 0; i < 2; i++ {
		if out := deliver(t, cfg, "s@c.test", []string{"r@example.test"}, "Subject: x\n\nx\n"); out.Status != MsgOK {
			t.Fatalf("delivery %d: %s", i, out)
		}
		time.Sleep(500 * time.Millisecond) // past the deadline, within IdleTime
	}
	if conns, accepted := f.counts(); conns != 1 || accepted != 2 {
		t.Errorf("%d connections, %d messages; want 1 and 2", conns, accepted)
	}
}
