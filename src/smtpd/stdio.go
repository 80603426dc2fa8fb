package smtpd

import (
	"io"
	"os"
	"syscall"
	"time"
)

// stdioConn is the client connection a UCSPI server (tcpserver) hands over as fd 0
// and fd 1.
type stdioConn struct{ r, w *os.File }

func (c stdioConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c stdioConn) Write(p []byte) (int, error)        { return c.w.Write(p) }
func (c stdioConn) SetReadDeadline(t time.Time) error  { return c.r.SetReadDeadline(t) }
func (c stdioConn) SetWriteDeadline(t time.Time) error { return c.w.SetWriteDeadline(t) }

// Stdio returns the connection on fd 0 (read) and fd 1 (write). When they are
// sockets, as under tcpserver, they are switched to non-blocking mode so Go's
// poller can enforce timeoutsmtpd; anything else (a pipe from sendmail -bs, a
// terminal) is used as it is, because its file description is shared with the
// caller, and then has no timeout.
func Stdio() io.ReadWriter {
	if isSocket(0) && isSocket(1) {
		syscall.SetNonblock(0, true)
		syscall.SetNonblock(1, true)
		return stdioConn{os.NewFile(0, "stdin"), os.NewFile(1, "stdout")}
	}
	return struct {
		io.Reader
		io.Writer
	}{os.Stdin, os.Stdout}
}

func isSocket(fd int) bool {
	var st syscall.Stat_t
	return syscall.Fstat(fd, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFSOCK
}
