// Package qmtp is QMTP and QMQP: netstrings, the servers qmail-qmtpd and qmail-qmqpd,
// qmail-qmqpc (a qmail-queue that hands the message to a QMQP server), and the QMTP
// client qmail-remote uses for destinations configured for it.
package qmtp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// maxDigits bounds a netstring length: 18 digits cannot overflow an int64.
const maxDigits = 18

// ProtocolError is malformed input: a bad length, a missing comma, a netstring
// longer than allowed or than the one that contains it.
type ProtocolError struct{ What string }

func (e *ProtocolError) Error() string { return "protocol error: " + e.What }

func protoErr(format string, a ...any) error { return &ProtocolError{What: fmt.Sprintf(format, a...)} }

// IsProtocolError reports whether err is malformed input (as opposed to a read error
// or the end of the input).
func IsProtocolError(err error) bool {
	var p *ProtocolError
	return errors.As(err, &p)
}

// ReadLength reads a netstring's "len:" and returns len, which must not exceed max.
// At a clean end of input before any byte it returns io.EOF; in the middle of the
// length, io.ErrUnexpectedEOF.
func ReadLength(r io.ByteReader, max int64) (int64, error) {
	var n int64
	digits := 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF && digits > 0 {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
		switch {
		case c >= '0' && c <= '9':
			if digits == 1 && n == 0 {
				return 0, protoErr("netstring length with a leading zero")
			}
			digits++
			if digits > maxDigits {
				return 0, protoErr("netstring length too long")
			}
			n = n*10 + int64(c-'0')
		case c == ':' && digits > 0:
			if n > max {
				return 0, protoErr("netstring of %d bytes, more than %d allowed", n, max)
			}
			return n, nil
		default:
			return 0, protoErr("bad character %q in netstring length", c)
		}
	}
}

// ReadComma reads the comma that ends a netstring.
func ReadComma(r io.ByteReader) error {
	c, err := r.ReadByte()
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	if c != ',' {
		return protoErr("netstring does not end in a comma (wrong length?)")
	}
	return nil
}

// Read reads one whole netstring of at most max bytes.
func Read(r *bufio.Reader, max int64) ([]byte, error) {
	n, err := ReadLength(r, max)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, unexpected(err)
	}
	if err := ReadComma(r); err != nil {
		return nil, err
	}
	return b, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Append appends s as a netstring.
func Append(dst, s []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, ':')
	dst = append(dst, s...)
	return append(dst, ',')
}

// AppendString is Append for a string.
func AppendString(dst []byte, s string) []byte { return Append(dst, []byte(s)) }

// Header is the "len:" of a netstring of n bytes.
func Header(n int64) []byte { return strconv.AppendInt(nil, n, 10) }

// limitedByteReader counts what a netstring nested in another consumes, so that the
// inner ones cannot run past the outer one's end (QMQP).
type limitedByteReader struct {
	r    *bufio.Reader
	left int64
}

func (l *limitedByteReader) ReadByte() (byte, error) {
	if l.left <= 0 {
		return 0, protoErr("netstring runs past the end of the one containing it")
	}
	c, err := l.r.ReadByte()
	if err == nil {
		l.left--
	}
	return c, err
}

func (l *limitedByteReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, protoErr("netstring runs past the end of the one containing it")
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// readInner reads one netstring of at most max bytes inside a limited region.
func readInner(l *limitedByteReader, max int64) ([]byte, error) {
	n, err := ReadLength(l, max)
	if err != nil {
		return nil, unexpected(err)
	}
	if n > l.left {
		return nil, protoErr("netstring of %d bytes runs past the end of the one containing it", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(l, b); err != nil {
		return nil, unexpected(err)
	}
	if err := ReadComma(l); err != nil {
		return nil, err
	}
	return b, nil
}
