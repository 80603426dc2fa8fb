package groupsync

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The service's protocol, on a Unix stream socket: on connecting, the client reads the
// service's greeting, its file system's device number (8 bytes, little-endian); then
// it writes request bytes, as many and as early as it likes, and reads one reply byte
// per request, in order. A reply comes once a syncfs that began after its request
// arrived has finished.
const (
	request    = 'S'
	replyOK    = 0 // the syncfs succeeded
	replyError = 1 // it failed: the caller's writes may not be on disk
)

const (
	// greetTimeout bounds the wait for a service's greeting.
	greetTimeout = time.Second
	// replyTimeout bounds the wait for a reply: a syncfs under heavy writing can take
	// seconds; past this the client stops waiting and syncs by itself.
	replyTimeout = time.Minute
	// redialAfter is how long a client syncs by itself after the service could not
	// be reached, before it tries again.
	redialAfter = time.Second
	// maxPending bounds the runs of requests (those read at once) of one connection
	// being synced at the same time, and so the service's goroutines per connection;
	// a client sending more waits, its requests held in the socket's buffer.
	maxPending = 8
)

// Serve answers sync requests on l with s until l is closed, holding at most maxConns
// connections at once (more are closed at once: their clients sync by themselves).
// When l is closed it closes the connections it holds and returns nil once their
// pending requests are answered or abandoned.
//
// A request costs the service no more than a syncfs of the file system, which any
// process that can open a file there may call itself, so the socket may be open to
// every local user.
func (s *Syncer) Serve(l *net.UnixListener, maxConns int) error {
	greeting := binary.LittleEndian.AppendUint64(nil, s.dev)
	var (
		mu    sync.Mutex
		conns = map[*net.UnixConn]bool{}
		wg    sync.WaitGroup
	)
	defer func() {
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of descriptors and the like: wait, rather than spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		mu.Lock()
		if len(conns) >= maxConns {
			mu.Unlock()
			c.Close()
			continue
		}
		conns[c] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(c, greeting)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		}()
	}
}

// pending is a run of requests that arrived together, and the result of the Sync
// started for them.
type pending struct {
	n   int
	err chan error
}

// serveConn starts a Sync for every run of requests as soon as it arrives, so that a
// request never waits for an earlier one's syncfs to finish before its own can start,
// and writes the replies in order.
func (s *Syncer) serveConn(c *net.UnixConn, greeting []byte) {
	c.SetWriteDeadline(time.Now().Add(greetTimeout))
	if _, err := c.Write(greeting); err != nil {
		return
	}
	queue := make(chan pending, maxPending)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ok := true
		for p := range queue {
			err := <-p.err
			if !ok {
				continue
			}
			reply := byte(replyOK)
			if err != nil {
				reply = replyError
			}
			// A client that does not read its replies loses its connection,
			// rather than holding the service's goroutines.
			c.SetWriteDeadline(time.Now().Add(replyTimeout))
			if _, werr := c.Write(bytesOf(reply, p.n)); werr != nil {
				ok = false
				c.Close() // the reader stops too
			}
		}
	}()
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			for _, b := range buf[:n] {
				if b != request {
					err = errors.New("not a request")
				}
			}
			if err == nil {
				// The Sync starts after the requests arrived, which their client
				// sent after its writes: the syncfs that answers them covers those.
				p := pending{n: n, err: make(chan error, 1)}
				go func() { p.err <- s.Sync() }()
				queue <- p
			}
		}
		if err != nil {
			break
		}
	}
	close(queue)
	<-done
}

func bytesOf(b byte, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = b
	}
	return p
}

// OpenVia is Open, with the Syncer asking the service listening on sock to sync the
// file system, when that service serves the file system holding path; otherwise, and
// whenever the service cannot be reached, it calls syncfs itself. sock must be a
// path only the service's owner can bind: the client trusts a reply of success.
func OpenVia(path, sock string) (*Syncer, error) {
	s, err := Open(path)
	if err != nil {
		return nil, err
	}
	s.via = &client{sock: sock, dev: s.dev}
	return s, nil
}

// errUnreachable is a client's failure to get an answer from the service: the client
// then syncs by itself.
var errUnreachable = errors.New("groupsync: sync service unreachable")

// client is a Syncer's connection to a service, shared by its callers: each sends its
// own request at once and waits for its own reply, so a caller never waits for
// another's round trip to end before its request is on its way.
type client struct {
	sock string
	dev  uint64

	mu      sync.Mutex
	conn    *net.UnixConn
	waiters []chan byte // callers waiting for a reply on conn, in request order
	foreign bool        // the service serves another file system: never ask it
	retry   time.Time   // no dialing before this, after a failure
	closed  bool
}

// ask makes everything written before the call durable through the service, or
// returns errUnreachable.
func (c *client) ask() error {
	c.mu.Lock()
	if c.conn == nil {
		if c.closed || c.foreign || time.Now().Before(c.retry) {
			c.mu.Unlock()
			return errUnreachable
		}
		if err := c.dial(); err != nil || c.foreign {
			if err != nil {
				c.retry = time.Now().Add(redialAfter)
			}
			c.mu.Unlock()
			return errUnreachable
		}
	}
	conn := c.conn
	ch := make(chan byte, 1)
	c.waiters = append(c.waiters, ch)
	// Under mu, so that the order of the bytes on the wire is that of waiters.
	if _, err := conn.Write([]byte{request}); err != nil {
		c.dropLocked(conn)
		c.mu.Unlock()
		return errUnreachable
	}
	c.mu.Unlock()
	t := time.NewTimer(replyTimeout)
	defer t.Stop()
	select {
	case r, ok := <-ch:
		switch {
		case !ok:
			return errUnreachable
		case r == replyOK:
			return nil
		case r == replyError:
			return fmt.Errorf("syncfs in the sync service %s failed", c.sock)
		}
		c.mu.Lock()
		c.dropLocked(conn) // not our protocol
		c.mu.Unlock()
		return errUnreachable
	case <-t.C:
		c.mu.Lock()
		c.dropLocked(conn)
		c.retry = time.Now().Add(redialAfter)
		c.mu.Unlock()
		return errUnreachable
	}
}

// dial connects and reads the greeting; a service of another file system makes the
// client foreign for good. It starts the reader of the new connection.
func (c *client) dial() error {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: c.sock, Net: "unix"})
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(greetTimeout))
	var g [8]byte
	if _, err := io.ReadFull(conn, g[:]); err != nil {
		conn.Close()
		return err
	}
	conn.SetDeadline(time.Time{})
	if binary.LittleEndian.Uint64(g[:]) != c.dev {
		conn.Close()
		c.foreign = true
		return nil
	}
	c.conn = conn
	go c.read(conn)
	return nil
}

// read hands each reply on conn to the waiter first in line, until conn fails.
func (c *client) read(conn *net.UnixConn) {
	r := bufio.NewReader(conn)
	for {
		b, err := r.ReadByte()
		c.mu.Lock()
		if err != nil || c.conn != conn || len(c.waiters) == 0 {
			// Closed, broken, or a reply nobody asked for.
			c.dropLocked(conn)
			c.mu.Unlock()
			return
		}
		w := c.waiters[0]
		c.waiters = c.waiters[1:]
		c.mu.Unlock()
		w <- b
	}
}

// dropLocked closes conn, if it is still the client's, and fails its waiters (who
// then sync by themselves); the next ask dials again.
func (c *client) dropLocked(conn *net.UnixConn) {
	if c.conn != conn {
		return
	}
	conn.Close()
	c.conn = nil
	for _, w := range c.waiters {
		close(w)
	}
	c.waiters = nil
}

func (c *client) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.conn != nil {
		c.dropLocked(c.conn)
	}
}
