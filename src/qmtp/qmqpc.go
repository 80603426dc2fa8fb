package qmtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/queue"
)

// QMQPPort is the QMQP port.
const QMQPPort = "628"

// Time limits of qmail-qmqpc.
const (
	qmqpcConnectTimeout = 10 * time.Second
	qmqpcTimeout        = 60 * time.Second
)

// spoolMemory is how much of a message qmail-qmqpc keeps in memory before it spools
// the rest to a temporary file (the length must be known before sending).
const spoolMemory = 1 << 20

// envelopeMax bounds the envelope qmail-qmqpc holds in memory.
const envelopeMax = 16 << 20

// QMQPC is qmail-qmqpc: a qmail-queue that hands the message (fd 0) and the envelope
// (fd 1) to the first QMQP server of control/qmqpservers that answers. Its exit codes
// are qmail-queue's; a server's own refusal text goes to fd 6 with exit 82 when the
// caller offers fd 6 (qmail 1.09's custom error convention).
func QMQPC(ctl control.Dir, msgIn, envIn *os.File, custom *os.File) int {
	msg, size, err := spool(msgIn)
	if err != nil {
		return queue.ExitRead
	}
	defer msg.Close()
	sender, rcpts, code := readEnvelope(envIn)
	if code != 0 {
		return code
	}
	servers, err := ctl.Strings("qmqpservers")
	if err != nil || len(servers) == 0 {
		return queue.ExitConfig
	}
	last := 73
	for _, srv := range servers {
		addr := serverAddr(srv)
		conn, err := net.DialTimeout("tcp", addr, qmqpcConnectTimeout)
		if err != nil {
			last = dialCode(err)
			continue
		}
		if _, err := msg.Seek(0, io.SeekStart); err != nil {
			conn.Close()
			return queue.ExitRead
		}
		conn.SetDeadline(time.Now().Add(qmqpcTimeout))
		resp, err := SendQMQP(deadlineConn{conn}, msg, size, sender, rcpts)
		conn.Close()
		if err != nil {
			last = dialCode(err)
			if IsProtocolError(err) {
				last = 74
			}
			continue
		}
		switch resp.Code {
		case 'K':
			return 0
		case 'D':
			return customExit(custom, 'D', resp.Text, queue.ExitRefused)
		default:
			return customExit(custom, 'Z', resp.Text, 71)
		}
	}
	return last
}

// deadlineConn renews the connection's deadline on each read and write.
type deadlineConn struct{ net.Conn }

func (c deadlineConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(qmqpcTimeout))
	return c.Conn.Read(p)
}

func (c deadlineConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(qmqpcTimeout))
	return c.Conn.Write(p)
}

// serverAddr takes a qmqpservers line: an IP address (port 628), or as an extension
// host:port or [IPv6]:port.
func serverAddr(s string) string {
	if h, p, err := net.SplitHostPort(s); err == nil {
		return net.JoinHostPort(h, p)
	}
	return net.JoinHostPort(strings.Trim(s, "[]"), QMQPPort)
}

func dialCode(err error) int {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return 72
	case errors.Is(err, syscall.ECONNREFUSED):
		return 73
	}
	return 74
}

// customExit reports a server's refusal: its text on fd 6 and exit 82 when the
// caller reads fd 6, else the plain exit code.
func customExit(custom *os.File, kind byte, text string, plain int) int {
	if custom == nil || text == "" {
		return plain
	}
	line := strings.NewReplacer("\r", " ", "\n", " ", "\x00", " ").Replace(text)
	if len(line) > 200 {
		line = line[:200]
	}
	if _, err := custom.Write([]byte(string(kind) + line)); err != nil {
		return plain
	}
	return queue.ExitCustom
}

// spool returns the message as a seekable reader and its size: a regular file as it
// is, anything else copied to memory, and beyond spoolMemory to a temporary file.
func spool(f *os.File) (io.ReadSeekCloser, int64, error) {
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		if off, err := f.Seek(0, io.SeekCurrent); err == nil {
			sec := io.NewSectionReader(f, off, fi.Size()-off)
			return nopCloser{sec}, fi.Size() - off, nil
		}
	}
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, f, spoolMemory+1)
	if err != nil && err != io.EOF {
		return nil, 0, err
	}
	if n <= spoolMemory {
		return nopCloser{bytes.NewReader(buf.Bytes())}, n, nil
	}
	tmp, err := os.CreateTemp("", "qmail-qmqpc")
	if err != nil {
		return nil, 0, err
	}
	os.Remove(tmp.Name()) // nothing is left behind, whatever happens
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return nil, 0, err
	}
	m, err := io.Copy(tmp, f)
	if err != nil {
		tmp.Close()
		return nil, 0, err
	}
	return tmp, n + m, nil
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

// readEnvelope reads qmail-queue's envelope: F sender, T recipients, an empty record.
// It returns qmail-queue's exit code for a bad one.
func readEnvelope(f *os.File) (string, []string, int) {
	r := bufio.NewReaderSize(io.LimitReader(f, envelopeMax), 4096)
	var sender string
	var rcpts []string
	first := true
	for {
		rec, err := r.ReadSlice(0)
		if err == bufio.ErrBufferFull {
			return "", nil, queue.ExitAddrTooLong // far longer than any address qmail takes
		}
		if err != nil {
			return "", nil, queue.ExitRead // the envelope must end with an empty record
		}
		rec = rec[:len(rec)-1]
		if len(rec) > queue.MaxAddr { // the type byte and an address of MaxAddr-1 bytes at most
			return "", nil, queue.ExitAddrTooLong
		}
		switch {
		case first && len(rec) > 0 && rec[0] == 'F':
			sender, first = string(rec[1:]), false
		case !first && len(rec) == 0:
			return sender, rcpts, 0
		case !first && rec[0] == 'T':
			rcpts = append(rcpts, string(rec[1:]))
		default:
			return "", nil, queue.ExitEnvelope
		}
	}
}

// OpenCustomFD returns fd 6 when the caller left it open for a custom error, else nil.
func OpenCustomFD() *os.File {
	var st syscall.Stat_t
	if err := syscall.Fstat(6, &st); err != nil {
		return nil
	}
	return os.NewFile(6, "custom-error")
}
