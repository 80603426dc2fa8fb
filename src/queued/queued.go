// Package queued is qmail-queued: a long-running qmail-queue. It runs as qmailq,
// listens on the unix socket QMAILHOME/run/qmail-queue, and queues each message sent
// on a connection (one, or several in turn) exactly as qmail-queue would (package
// queue's Enqueue: the same Received line, envelope checks, files, durability order
// and exit codes), so that a program queueing mail costs no process start. Concurrent messages
// share their syncs (group commit, Server.Sync): one syncfs(2) makes the mess/ and
// intd/ files of every message then waiting durable, another their todo/ links. The caller's identity, which
// qmail-queue takes from getuid and getpid, comes from the socket's SO_PEERCRED.
//
// The protocol, after the connection is accepted:
//
//	server: 'Q'                      ready; a closed connection instead means
//	                                 "run bin/qmail-queue yourself"
//	client: chunks of the message, each a 4-byte big-endian length (1..MaxChunk) and
//	        its bytes; a zero length ends the message
//	client: the envelope, as on qmail-queue's fd 1: F<sender>\0 T<rcpt>\0 ... \0
//	server: one byte, qmail-queue's exit code; then it closes the connection, except
//	        after exit code 0, when it sends 'Q' again in the same write: the client
//	        may then send the next message in the same way, or close
//
// A connection that ends or breaks before the envelope's final \0 queues nothing.
package queued

import (
	"bufio"
	"debug/buildinfo"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/notqmail/notqmail/src/fileid"
	"github.com/notqmail/notqmail/src/queue"
)

// Socket is the socket's path relative to QMAILHOME; its directory, run/, is owned by
// qmailq and mode 0755, so only qmailq can put a socket there.
const Socket = "run/qmail-queue"

// Ready is the server's greeting.
const Ready = 'Q'

// MaxChunk is the largest message chunk.
const MaxChunk = 64 * 1024

// QueueMain is the main package of the genuine bin/qmail-queue.
const QueueMain = "github.com/notqmail/notqmail/src/cmd/qmail-queue"

// MaxConns is the default limit on connections served at once; beyond it a connection
// is closed at once and its client runs bin/qmail-queue instead.
const MaxConns = 256

// Server queues messages for the connections of one listener.
type Server struct {
	Queue queue.Queue
	// QueueProgram is bin/qmail-queue. Connections are served only while it is
	// notqmail's own qmail-queue: a site that replaced it by a filter must see every
	// message, so clients then fall back to running it.
	QueueProgram string
	// Uids of alias, qmaild and qmails, for the Received line's "invoked" text.
	Alias, Qmaild, Qmails int
	// Sandbox: every caller is "by uid N", and root (who would become the sandbox's
	// owner before running qmail-queue) counts as SandboxUID.
	Sandbox    bool
	SandboxUID int
	MaxConns   int           // default MaxConns
	Death      time.Duration // a connection's lifetime; default queue.Death
	Log        func(string)  // default: stderr
	Spares     *queue.Spares // optional: take files from spare/q
	// Sync, when set, makes messages durable by group commit (queue.Options.Sync):
	// a groupsync.Syncer on the queue's file system, shared by all connections.
	// Without it each message fsyncs its own files, as bin/qmail-queue does.
	Sync queue.Syncer

	mu       sync.Mutex
	progStat fileid.ID // bin/qmail-queue as last checked, so that a replacement is noticed
	progOK   bool
	active   sync.WaitGroup
	n        atomic.Int64
	seq      atomic.Uint64

	idleMu   sync.Mutex
	idle     map[*net.UnixConn]bool // connections waiting for a next message
	stopping bool
}

// Genuine reports whether the program at p was built from notqmail's qmail-queue.
func Genuine(p string) (bool, error) {
	bi, err := buildinfo.ReadFile(p)
	if err != nil {
		return false, err
	}
	return bi.Path == QueueMain, nil
}

// Usable checks bin/qmail-queue, cheaply when it has not changed since the last
// check: a stat per connection, a read of its build information after a change.
func (s *Server) Usable() bool {
	var st syscall.Stat_t
	if err := syscall.Stat(s.QueueProgram, &st); err != nil {
		s.logf("warning: unable to stat %s: %v; clients run it themselves", s.QueueProgram, err)
		return false
	}
	id := fileid.Of(&st)
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == s.progStat {
		return s.progOK
	}
	ok, err := Genuine(s.QueueProgram)
	if !ok {
		why := ""
		if err != nil {
			why = " (" + err.Error() + ")"
		}
		s.logf("warning: %s is not notqmail's qmail-queue%s; clients run it themselves so that it sees every message", s.QueueProgram, why)
	}
	s.progStat, s.progOK = id, ok
	return ok
}

func (s *Server) logf(format string, a ...any) {
	msg := "qmail-queued: " + fmt.Sprintf(format, a...)
	if s.Log != nil {
		s.Log(msg)
		return
	}
	fmt.Fprintln(os.Stderr, msg)
}

// Serve accepts connections until l is closed, then waits for the connections being
// served. It returns nil when l was closed.
func (s *Server) Serve(l *net.UnixListener) error {
	defer func() {
		s.endIdle()
		s.active.Wait()
	}()
	limit := int64(s.MaxConns)
	if limit <= 0 {
		limit = MaxConns
	}
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// EMFILE and friends: back off instead of spinning.
			s.logf("warning: accept: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if s.n.Load() >= limit || !s.Usable() {
			c.Close()
			continue
		}
		s.n.Add(1)
		s.active.Add(1)
		go func() {
			defer s.active.Done()
			defer s.n.Add(-1)
			s.serveConn(c)
		}()
	}
}

// Listen makes the socket at path, replacing a stale one, open to every local user.
func Listen(path string) (*net.UnixListener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	// Connecting takes write permission on the socket; the umask took it away.
	if err := os.Chmod(path, 0666); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// serveConn queues the connection's messages: one, and then another each time the
// client sends one after the exit code of the last that was queued (a client keeping
// its connection for the next message).
func (s *Server) serveConn(c *net.UnixConn) {
	defer c.Close()
	cred, err := peerCred(c)
	if err != nil {
		s.logf("warning: unable to get the peer's credentials: %v", err)
		return
	}
	br := readers.Get().(*bufio.Reader)
	br.Reset(c)
	defer func() { br.Reset(nil); readers.Put(br) }()
	for first := true; s.serveMessage(c, br, cred, first); first = false {
	}
}

// exitReplaced refuses a message for now (qmail-queue's code 71, "temporarily
// rejected") when bin/qmail-queue has been replaced since the connection was greeted.
const exitReplaced = 71

// ReuseIdle is how long a connection may wait for its next message. Clients keep a
// connection for less (queueclient.KeepFor), so that they do not send a message on
// one that is being closed.
var ReuseIdle = time.Minute

// serveMessage greets the client and queues one message. It reports whether the
// message was queued, so that the connection can carry another.
func (s *Server) serveMessage(c *net.UnixConn, br *bufio.Reader, cred *syscall.Ucred, first bool) bool {
	if first {
		if _, err := c.Write([]byte{Ready}); err != nil {
			return false
		}
	}
	// No files until the client has sent something: a connection that is idle or
	// closed at once (a probe, a client that changed its mind, a kept connection not
	// needed again) costs no queue work.
	death := s.Death
	if death <= 0 {
		death = queue.Death
	}
	if first {
		c.SetDeadline(time.Now().Add(death))
	} else if !s.waitIdle(c, true) {
		return false
	}
	_, err := br.Peek(1)
	if !first {
		s.waitIdle(c, false)
	}
	if err != nil {
		if first && isTimeout(err) {
			c.Write([]byte{queue.ExitTimeout})
		}
		return false
	}
	if !first && !s.Usable() {
		// bin/qmail-queue was replaced after this connection was greeted again: the
		// message must go through the replacement, so it is refused for now, and the
		// client's next connection is turned away to run it.
		c.Write([]byte{exitReplaced})
		return false
	}
	// qmail-queue's life, and the Received line's time, start with the message.
	start := time.Now()
	deadline := start.Round(0).Add(death)
	c.SetDeadline(deadline)
	uid := int(cred.Uid)
	if s.Sandbox && uid == 0 {
		uid = s.SandboxUID
	}
	caller := queue.Caller{
		UID:      uid,
		PID:      int(cred.Pid),
		Invoked:  queue.Invoked(uid, s.Alias, s.Qmaild, s.Qmails, s.Sandbox),
		Time:     start,
		Deadline: deadline,
	}
	msg := &chunkReader{r: br}
	opts := queue.Options{
		Spares:  s.Spares,
		Sync:    s.Sync,
		PidName: strconv.Itoa(os.Getpid()) + "." + strconv.FormatUint(s.seq.Add(1), 10),
	}
	err = queue.EnqueueWith(s.Queue, msg, br, caller, opts)
	code := queue.Code(err)
	switch code {
	case queue.ExitOK, queue.ExitRead, queue.ExitTimeout, queue.ExitAddrTooLong, queue.ExitEnvelope:
		// The client's business (it gave up, died or sent a bad envelope), told to it
		// by the exit code; logging it would let any local user fill the log.
	default:
		s.logf("warning: pid %d uid %d: %v", cred.Pid, cred.Uid, err)
	}
	if time.Now().After(deadline) && code == queue.ExitRead {
		code = queue.ExitTimeout
	}
	// Where a failed message's bytes end is unknown: no next message after it. A next
	// message is welcome only as a new connection would be: a qmail-queue replaced
	// meanwhile must see it, so the client is sent away to run it.
	if code != queue.ExitOK || !s.Usable() {
		c.Write([]byte{byte(code)})
		return false
	}
	// The exit code and, in the same write, the greeting for a next message; a client
	// that closes after the code (as every one used to) never reads it.
	_, err = c.Write([]byte{byte(code), Ready})
	return err == nil
}

// waitIdle registers c as waiting for a next message (for at most ReuseIdle), or no
// longer waiting. It reports false when the server is stopping: a connection kept
// for later must not hold up its shutdown.
func (s *Server) waitIdle(c *net.UnixConn, waiting bool) bool {
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	if !waiting {
		delete(s.idle, c)
		return true
	}
	if s.stopping {
		return false
	}
	if s.idle == nil {
		s.idle = map[*net.UnixConn]bool{}
	}
	s.idle[c] = true
	c.SetDeadline(time.Now().Add(ReuseIdle))
	return true
}

// endIdle wakes the connections waiting for a next message, which then close.
func (s *Server) endIdle() {
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	s.stopping = true
	for c := range s.idle {
		c.SetDeadline(time.Now())
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readers are the connections' buffers, reused rather than 64 KiB of garbage each.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64*1024) }}

// chunkReader reads the message's chunks, ending at the zero-length one. An end of
// the connection before it is an error, so the message is not queued.
type chunkReader struct {
	r    *bufio.Reader
	left int
	done bool
}

func (cr *chunkReader) Read(p []byte) (int, error) {
	if cr.done {
		return 0, io.EOF
	}
	if cr.left == 0 {
		var hdr [4]byte
		if _, err := io.ReadFull(cr.r, hdr[:]); err != nil {
			return 0, noEOF(err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 {
			cr.done = true
			return 0, io.EOF
		}
		if n > MaxChunk {
			return 0, fmt.Errorf("message chunk of %d bytes, more than %d", n, MaxChunk)
		}
		cr.left = int(n)
	}
	if len(p) > cr.left {
		p = p[:cr.left]
	}
	n, err := cr.r.Read(p)
	cr.left -= n
	if err != nil {
		return n, noEOF(err)
	}
	return n, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func peerCred(c *net.UnixConn) (*syscall.Ucred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *syscall.Ucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cred, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, serr
}

// WriteChunk writes one message chunk of at most MaxChunk bytes (a client's side of
// the protocol); an empty p ends the message.
func WriteChunk(w io.Writer, p []byte) error {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(p)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	if len(p) == 0 {
		return nil
	}
	_, err := w.Write(p)
	return err
}

// SocketPath returns the socket under the qmail home dir.
func SocketPath(home string) string { return filepath.Join(home, Socket) }
