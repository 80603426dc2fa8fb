package qmtp

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// Response is a server's answer: K (accepted), Z (temporary failure) or D
// (permanent failure), and its text.
type Response struct {
	Code byte
	Text string
}

// maxResponse bounds one response a client accepts.
const maxResponse = 1 << 16

// writeMessage writes a netstring of size bytes (after prefix) from msg, failing if
// msg holds fewer or more bytes than announced.
func writeMessage(w *bufio.Writer, prefix []byte, msg io.Reader, size int64) error {
	w.Write(Header(size + int64(len(prefix))))
	w.WriteByte(':')
	w.Write(prefix)
	n, err := io.CopyN(w, msg, size)
	if err != nil {
		return fmt.Errorf("message shorter than its %d bytes (%d read): %v", size, n, err)
	}
	var extra [1]byte
	if k, _ := msg.Read(extra[:]); k > 0 {
		return fmt.Errorf("message longer than its %d bytes", size)
	}
	return w.WriteByte(',')
}

func recipientList(rcpts []string) []byte {
	var list []byte
	for _, r := range rcpts {
		list = AppendString(list, r)
	}
	return list
}

func readResponse(r *bufio.Reader) (Response, error) {
	b, err := Read(r, maxResponse)
	if err != nil {
		return Response{}, err
	}
	if len(b) == 0 || (b[0] != 'K' && b[0] != 'Z' && b[0] != 'D') {
		return Response{}, protoErr("response %q is not K, Z or D", clip(b))
	}
	return Response{Code: b[0], Text: string(b[1:])}, nil
}

func clip(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// SendQMTP sends one QMTP package on conn (the message in LF encoding, size bytes
// from msg) and returns the responses, one per recipient. A missing response is an
// error: the caller treats those recipients as temporary failures, as the protocol
// says. The connection may carry further packages.
func SendQMTP(w *bufio.Writer, r *bufio.Reader, msg io.Reader, size int64, sender string, rcpts []string) ([]Response, error) {
	if err := writeMessage(w, []byte{'\n'}, msg, size); err != nil {
		return nil, err
	}
	w.Write(AppendString(nil, sender))
	w.Write(Append(nil, recipientList(rcpts)))
	if err := w.Flush(); err != nil {
		return nil, err
	}
	resp := make([]Response, 0, len(rcpts))
	for range rcpts {
		x, err := readResponse(r)
		if err != nil {
			return resp, err
		}
		resp = append(resp, x)
	}
	return resp, nil
}

// SendQMQP sends one QMQP request on conn and returns the server's one response.
func SendQMQP(conn io.ReadWriter, msg io.Reader, size int64, sender string, rcpts []string) (Response, error) {
	rest := AppendString(nil, sender)
	for _, r := range rcpts {
		rest = AppendString(rest, r)
	}
	msgLen := int64(len(Header(size))) + 1 + size + 1
	w := bufio.NewWriterSize(conn, 64*1024)
	w.WriteString(strconv.FormatInt(msgLen+int64(len(rest)), 10))
	w.WriteByte(':')
	if err := writeMessage(w, nil, msg, size); err != nil {
		return Response{}, err
	}
	w.Write(rest)
	w.WriteByte(',')
	if err := w.Flush(); err != nil {
		return Response{}, err
	}
	return readResponse(bufio.NewReaderSize(conn, 4096))
}

// Converse sends one message over an open QMTP connection, each read and write
// bounded by timeout, and returns one response per recipient. On an error, the
// responses received so far are returned with it; the rest count as temporary
// failures.
func Converse(conn net.Conn, timeout time.Duration, msg io.Reader, size int64, sender string, rcpts []string) ([]Response, error) {
	dc := &timedConn{conn, timeout}
	return SendQMTP(bufio.NewWriterSize(dc, 64*1024), bufio.NewReaderSize(dc, 4096), msg, size, sender, rcpts)
}

// timedConn renews a deadline before each read and write.
type timedConn struct {
	c       net.Conn
	timeout time.Duration
}

func (t *timedConn) Read(p []byte) (int, error) {
	t.c.SetReadDeadline(time.Now().Add(t.timeout))
	return t.c.Read(p)
}

func (t *timedConn) Write(p []byte) (int, error) {
	t.c.SetWriteDeadline(time.Now().Add(t.timeout))
	return t.c.Write(p)
}
