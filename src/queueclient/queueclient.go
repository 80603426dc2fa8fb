// Package queueclient hands messages to qmail-queue, as qmail's qmail_open and
// qmail_close do, for every program that queues mail (qmail-smtpd, qmail-inject,
// qmail-local forwarding, qmail-send bounces, qmail-qmtpd, qmail-qmqpd).
//
// The program run is $QMAILQUEUE if set, else $QMAILHOME/bin/qmail-queue (a relative
// QMAILQUEUE is taken relative to QMAILHOME, and PATH is not searched, as with qmail's
// execv). It runs in QMAILHOME with the message on fd 0, the envelope on fd 1 and a
// pipe on fd 6 on which a QMAILQUEUE replacement may explain a refusal (exit 82).
//
//	c, err := queueclient.Open()
//	if err != nil { ... }            // temporary: could not start qmail-queue
//	c.Write(message)                 // any number of times; io.Copy(c, r) works
//	c.From("sender@example.org")     // ends the message
//	c.To("rcpt@example.net")         // once per recipient
//	err = c.Close()                  // nil: queued; *Error: why not
//
// Or in one call: queueclient.Submit(r, sender, rcpts).
//
// When QMAILQUEUE is unset and the program is not chosen in Config, Open first tries
// qmail-queued's socket, QMAILHOME/run/qmail-queue: qmail-queued queues the message
// just as bin/qmail-queue would, without a process start. Without the socket, when it
// refuses the connection or does not greet at once (qmail-queued busy, or
// bin/qmail-queue replaced by a site's filter), and for a setuid caller (whose real
// uid qmail-queue would record), bin/qmail-queue is run as described above. Either way
// the caller sees the same results and errors. After a message qmail-queued queued,
// the connection is kept (MaxKept, KeepFor) for the process's next message.
package queueclient

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/queued"
)

// Error is a message that was not queued. Text is qmail's wording (qmail.c's
// qmail_close) without its D/Z prefix, for example "qq write error or disk full
// (#4.3.0)"; qmail-smtpd answers 554 Text when Permanent, else 451 Text.
type Error struct {
	Code      int  // qmail-queue's exit code; -1 when it crashed or could not be waited for
	Permanent bool // qmail's "D": do not retry
	Text      string
}

func (e *Error) Error() string { return e.Text }

// Status is the error in qmail's internal form: "D" or "Z" followed by Text.
func (e *Error) Status() string {
	if e.Permanent {
		return "D" + e.Text
	}
	return "Z" + e.Text
}

// IsPermanent reports whether err is a permanent queueing failure.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// CustomErrorFD is the descriptor on which a QMAILQUEUE replacement may write its own
// D/Z message before exiting 82.
const CustomErrorFD = 6

// CustomErrorGrace is how long Close waits, after qmail-queue has exited, for fd 6 to
// be closed by any process that inherited it.
const CustomErrorGrace = time.Second

// MaxCustomError is the longest custom message used; the rest is read and dropped.
const MaxCustomError = 255

// Text returns qmail's D/Z text for a qmail-queue exit code (qmail_close's table),
// with custom the fd-6 message, used for exit 82 when it starts with D or Z.
func Text(code int, custom string) *Error {
	z := func(s string) *Error { return &Error{Code: code, Text: s} }
	d := func(s string) *Error { return &Error{Code: code, Permanent: true, Text: s} }
	switch code {
	case 11, 115:
		return d("envelope address too long for qq (#5.1.3)")
	case 31:
		return d("mail server permanently rejected message (#5.3.0)")
	case 51:
		return z("qq out of memory (#4.3.0)")
	case 52:
		return z("qq timeout (#4.3.0)")
	case 53:
		return z("qq write error or disk full (#4.3.0)")
	case 0, 54:
		return z("qq read error (#4.3.0)")
	case 55:
		return z("qq unable to read configuration (#4.3.0)")
	case 56:
		return z("qq trouble making network connection (#4.3.0)")
	case 61:
		return z("qq trouble in home directory (#4.3.0)")
	case 62, 63, 64, 65, 66:
		return z("qq trouble creating files in queue (#4.3.0)")
	case 71:
		return z("mail server temporarily rejected message (#4.3.0)")
	case 72:
		return z("connection to mail server timed out (#4.4.1)")
	case 73:
		return z("connection to mail server rejected (#4.4.1)")
	case 74:
		return z("communication with mail server failed (#4.4.2)")
	case 81, 91:
		return z("qq internal bug (#4.3.0)")
	case 82:
		if m := cleanCustom(custom); len(m) > 1 && (m[0] == 'D' || m[0] == 'Z') {
			return &Error{Code: code, Permanent: m[0] == 'D', Text: m[1:]}
		}
	case 120:
		return z("unable to exec qq (#4.3.0)")
	}
	if code >= 11 && code <= 40 {
		return d("qq permanent problem (#5.3.0)")
	}
	return z("qq temporary problem (#4.3.0)")
}

// cleanCustom keeps the first line of a custom message, at most MaxCustomError bytes,
// so that a filter cannot inject extra SMTP reply lines.
func cleanCustom(s string) string {
	if len(s) > MaxCustomError {
		s = s[:MaxCustomError]
	}
	if i := strings.IndexAny(s, "\r\n\x00"); i >= 0 {
		s = s[:i]
	}
	return s
}

// Config says which program to run and where; zero fields take the defaults.
type Config struct {
	Home    string   // QMAILHOME: the working directory; default home.Dir()
	Program string   // default $QMAILQUEUE, else bin/qmail-queue (relative to Home)
	Env     []string // the program's environment; default os.Environ()
	// Exec runs the program even when qmail-queued could queue the message.
	Exec bool
	// Stderr is the program's standard error; default os.Stderr.
	Stderr *os.File
}

// Greeting is how long Open waits for qmail-queued's greeting before it runs
// bin/qmail-queue instead.
const Greeting = 5 * time.Second

// Client is one message being handed to qmail-queue.
type Client struct {
	cmd      *exec.Cmd
	msg      *os.File // write end of fd 0
	env      *os.File // write end of fd 1
	custom   *os.File // read end of fd 6
	w        *bufio.Writer
	inEnv    bool
	failed   error
	closed   bool
	customCh chan string
	conn     *net.UnixConn // qmail-queued's connection; nil when running a program
	keepAs   string        // conn's key in kept, where it goes after a success
}

// ErrFailed is returned by Write after Fail or after an earlier write error.
var ErrFailed = errors.New("queueclient: message already failed")

// Open starts qmail-queue with the defaults.
func Open() (*Client, error) { return Config{}.Open() }

// Open starts the queue program. An error means no program was started; it is an
// *Error for the cases qmail reports through exit codes (61, 120).
func (cf Config) Open() (*Client, error) {
	if cf.Home == "" {
		cf.Home = home.Dir()
	}
	if cf.Program == "" {
		cf.Program = os.Getenv("QMAILQUEUE")
		// qmail-queue records the caller's real uid, SO_PEERCRED the effective one.
		if cf.Program == "" && !cf.Exec && os.Geteuid() == os.Getuid() {
			if c := dial(cf.Home); c != nil {
				return c, nil
			}
		}
	}
	if cf.Program == "" {
		cf.Program = "bin/qmail-queue"
	}
	if cf.Env == nil {
		cf.Env = os.Environ()
	}
	if fi, err := os.Stat(cf.Home); err != nil || !fi.IsDir() {
		return nil, Text(61, "")
	}
	prog := cf.Program
	if !filepath.IsAbs(prog) {
		prog = filepath.Join(cf.Home, prog)
	}
	c := &Client{customCh: make(chan string, 1)}
	var child []*os.File
	ok := false
	defer func() {
		for _, f := range child {
			f.Close()
		}
		if !ok {
			for _, f := range []*os.File{c.msg, c.env, c.custom} {
				if f != nil {
					f.Close()
				}
			}
		}
	}()
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err != nil {
			return nil, nil, fmt.Errorf("queueclient: pipe: %w", err)
		}
		return r, w, nil
	}
	mr, mw, err := pipe()
	if err != nil {
		return nil, err
	}
	child, c.msg = append(child, mr), mw
	er, ew, err := pipe()
	if err != nil {
		return nil, err
	}
	child, c.env = append(child, er), ew
	cr, cw, err := pipe()
	if err != nil {
		return nil, err
	}
	child, c.custom = append(child, cw), cr

	c.cmd = &exec.Cmd{
		Path:       prog,
		Args:       []string{cf.Program},
		Env:        cf.Env,
		Dir:        cf.Home,
		Stdin:      mr,
		Stdout:     er,
		Stderr:     os.Stderr,
		ExtraFiles: make([]*os.File, CustomErrorFD-2), // fds 3..5 closed, 6 = custom pipe
	}
	if cf.Stderr != nil {
		c.cmd.Stderr = cf.Stderr
	}
	c.cmd.ExtraFiles[CustomErrorFD-3] = cw
	if err := c.cmd.Start(); err != nil {
		return nil, Text(120, "")
	}
	ok = true
	c.w = bufio.NewWriterSize(c.msg, 64*1024)
	go c.readCustom()
	return c, nil
}

// dial connects to qmail-queued, or takes a connection kept from an earlier message,
// and waits for its greeting; nil means "run the program instead".
func dial(home string) *Client {
	path := queued.SocketPath(home)
	// qmail-queued knows the caller by the ids it connected with (SO_PEERCRED): a
	// connection is reused only by the ids that made it.
	key := path + "\x00" + strconv.Itoa(os.Geteuid()) + "\x00" + strconv.Itoa(os.Getegid())
	for {
		conn := kept.take(key)
		fresh := conn == nil
		if fresh {
			var err error
			conn, err = net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				return nil
			}
		}
		conn.SetReadDeadline(time.Now().Add(Greeting))
		var b [1]byte
		if _, err := io.ReadFull(conn, b[:]); err != nil || b[0] != queued.Ready || (!fresh && closed(conn)) {
			conn.Close()
			if fresh {
				return nil
			}
			// A kept connection that qmail-queued has since closed (idle, restarted,
			// or its qmail-queue replaced): try the next, then a new one.
			continue
		}
		conn.SetReadDeadline(time.Time{})
		c := &Client{conn: conn, keepAs: key}
		c.w = bufio.NewWriterSize(chunker{conn}, queued.MaxChunk)
		return c
	}
}

// MaxKept bounds the connections to qmail-queued kept, per socket and ids, for later
// messages.
const MaxKept = 16

// KeepFor is how long a connection is kept unused: well under the time qmail-queued
// waits for a next message (queued.ReuseIdle), so that a message is never sent on a
// connection qmail-queued is closing.
const KeepFor = 20 * time.Second

// closed reports whether qmail-queued has closed conn after its greeting (it stopped).
func closed(conn *net.UnixConn) bool {
	rc, err := conn.SyscallConn()
	if err != nil {
		return true
	}
	eof := false
	rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		eof = n == 0 && err == nil
		return true
	})
	return eof
}

// kept holds connections on which qmail-queued has queued a message and greeted again:
// a process queueing one message after another (qmail-smtpd's listener, qmail-send's
// bounces) then pays for a connection once, not per message.
var kept = keptConns{m: map[string][]keptConn{}}

type keptConns struct {
	mu sync.Mutex
	m  map[string][]keptConn
}

type keptConn struct {
	c     *net.UnixConn
	since time.Time
}

// take returns the connection kept last under key, closing those kept too long.
func (k *keptConns) take(key string) *net.UnixConn {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.dropStale(k.m[key])
	if len(l) == 0 {
		delete(k.m, key)
		return nil
	}
	c := l[len(l)-1].c
	k.m[key] = l[:len(l)-1]
	return c
}

// dropStale closes the connections of l kept too long and returns the rest; l is
// oldest first, so those are a prefix.
func (k *keptConns) dropStale(l []keptConn) []keptConn {
	for len(l) > 0 && time.Since(l[0].since) >= KeepFor {
		l[0].c.Close()
		l = l[1:]
	}
	return l
}

func (k *keptConns) put(key string, c *net.UnixConn) {
	k.mu.Lock()
	// Stale ones go here too, so that a list only ever added to does not keep
	// connections qmail-queued has closed.
	if l := k.dropStale(k.m[key]); len(l) < MaxKept {
		k.m[key] = append(l, keptConn{c, time.Now()})
		c = nil
	}
	k.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// chunker frames message data for qmail-queued, at most MaxChunk bytes a frame.
type chunker struct{ conn *net.UnixConn }

func (ch chunker) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), queued.MaxChunk)
		var hdr [4]byte
		hdr[0], hdr[1], hdr[2], hdr[3] = byte(k>>24), byte(k>>16), byte(k>>8), byte(k)
		bufs := net.Buffers{hdr[:], p[:k]}
		if _, err := bufs.WriteTo(ch.conn); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// readCustom collects the fd-6 message, bounded, until the pipe closes (every writer
// has exited) or Close's deadline passes (a grandchild kept the pipe open).
func (c *Client) readCustom() {
	var got []byte
	buf := make([]byte, 512)
	for {
		n, err := c.custom.Read(buf)
		if room := MaxCustomError + 1 - len(got); room > 0 {
			got = append(got, buf[:min(room, n)]...)
		}
		if err != nil {
			break
		}
	}
	c.customCh <- string(got)
}

// PID is qmail-queue's process id (qmail's qmail_qp), which qmail-smtpd reports. With
// qmail-queued it is the caller's own, which qmail-queued puts in the Received line.
func (c *Client) PID() int {
	if c.conn != nil {
		return os.Getpid()
	}
	return c.cmd.Process.Pid
}

// Write adds message data. After a failure it returns an error, and the message will
// not be queued.
func (c *Client) Write(p []byte) (int, error) {
	if c.failed != nil {
		return 0, c.failed
	}
	if c.inEnv {
		c.Fail()
		return 0, errors.New("queueclient: Write after From")
	}
	n, err := c.w.Write(p)
	if err != nil {
		c.failed = ErrFailed
	}
	return n, err
}

// Fail abandons the message (qmail_fail): nothing more is sent, qmail-queue sees an
// unterminated envelope and queues nothing, and Close returns an error.
func (c *Client) Fail() {
	if c.failed == nil {
		c.failed = ErrFailed
	}
}

// From ends the message and starts the envelope with its sender.
func (c *Client) From(sender string) {
	if c.inEnv {
		c.Fail()
		return
	}
	if c.failed == nil {
		if err := c.w.Flush(); err != nil {
			c.failed = ErrFailed
		}
	}
	c.inEnv = true
	if c.conn != nil {
		c.w = bufio.NewWriterSize(c.conn, 4096)
		if c.failed == nil {
			c.w.Write([]byte{0, 0, 0, 0}) // the empty chunk: end of message
		}
	} else {
		c.msg.Close()
		c.w = bufio.NewWriterSize(c.env, 4096)
	}
	c.put("F", sender)
}

// To adds a recipient; it must follow From.
func (c *Client) To(rcpt string) {
	if !c.inEnv {
		c.Fail()
		return
	}
	c.put("T", rcpt)
}

func (c *Client) put(kind, addr string) {
	if c.failed != nil {
		return
	}
	// A NUL inside an address would end it early and turn its rest into records.
	if strings.IndexByte(addr, 0) >= 0 {
		c.Fail()
		return
	}
	c.w.WriteString(kind)
	c.w.WriteString(addr)
	if err := c.w.WriteByte(0); err != nil {
		c.failed = ErrFailed
	}
}

// Close ends the envelope, waits for qmail-queue and reports the result: nil when the
// message is queued, otherwise an *Error.
func (c *Client) Close() error {
	if c.closed {
		return errors.New("queueclient: Close called twice")
	}
	c.closed = true
	if c.conn != nil {
		return c.closeConn()
	}
	if !c.inEnv {
		// Never got a sender: end the message so qmail-queue sees an empty envelope.
		c.Fail()
		c.w.Flush()
		c.msg.Close()
	}
	if c.failed == nil {
		c.w.WriteByte(0)
		if err := c.w.Flush(); err != nil {
			c.failed = ErrFailed
		}
	}
	c.env.Close()
	werr := c.cmd.Wait()
	// Normally the pipe reaches EOF as the child exits. A background process that
	// inherited fd 6 would hold it open forever: give up on it after a grace period.
	c.custom.SetReadDeadline(time.Now().Add(CustomErrorGrace))
	custom := <-c.customCh
	c.custom.Close()

	code := -1
	if werr == nil {
		code = 0
	} else if ee, ok := werr.(*exec.ExitError); ok && ee.Exited() {
		code = ee.ExitCode()
	} else if ok {
		return &Error{Code: -1, Text: "qq crashed (#4.3.0)"}
	} else {
		return &Error{Code: -1, Text: "qq waitpid surprise (#4.3.0)"}
	}
	if code == 0 && c.failed == nil {
		return nil
	}
	return Text(code, custom)
}

// closeConn is Close for qmail-queued: the envelope's end, unless the message failed,
// then qmail-queued's answer, qmail-queue's exit code. A message that failed is ended
// by shutting down the connection, which qmail-queued answers with exit 54 as
// qmail-queue answers an unterminated envelope.
func (c *Client) closeConn() error {
	keep := false
	defer func() {
		if keep {
			kept.put(c.keepAs, c.conn)
		} else {
			c.conn.Close()
		}
	}()
	if !c.inEnv {
		c.Fail()
	}
	if c.failed == nil {
		c.w.WriteByte(0)
		if err := c.w.Flush(); err != nil {
			c.failed = ErrFailed
		}
	}
	if c.failed != nil {
		c.conn.CloseWrite()
	}
	var b [1]byte
	if _, err := io.ReadFull(c.conn, b[:]); err != nil {
		// qmail-queued went away without an answer, as a crashed qmail-queue would.
		return &Error{Code: -1, Text: "qq crashed (#4.3.0)"}
	}
	code := int(b[0])
	if code == 0 && c.failed == nil {
		// qmail-queued greets again after a message it queued, and the greeting is read
		// when the connection is next used.
		keep = true
		return nil
	}
	return Text(code, "")
}

// Submit queues the message read from r for sender and rcpts.
func Submit(r io.Reader, sender string, rcpts []string) error {
	return Config{}.Submit(r, sender, rcpts)
}

// Submit queues the message read from r with this configuration. A read error on r
// abandons the message and is returned.
func (cf Config) Submit(r io.Reader, sender string, rcpts []string) error {
	c, err := cf.Open()
	if err != nil {
		return err
	}
	var rerr error
	if _, err := io.Copy(writerOnly{c}, readerOnly{r, &rerr}); err != nil && rerr != nil {
		c.Fail()
	}
	c.From(sender)
	for _, t := range rcpts {
		c.To(t)
	}
	cerr := c.Close()
	if rerr != nil {
		return fmt.Errorf("queueclient: reading message: %w", rerr)
	}
	return cerr
}

// readerOnly records read errors so Submit can tell them from write errors.
type readerOnly struct {
	r   io.Reader
	err *error
}

func (r readerOnly) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		*r.err = err
	}
	return n, err
}

// writerOnly hides Client's other methods from io.Copy.
type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }
