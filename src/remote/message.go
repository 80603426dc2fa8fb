package remote

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"unicode/utf8"
)

// Message is the message to send, scanned once before connecting so that SIZE,
// BODY=8BITMIME and SMTPUTF8 can be decided up front.
type Message struct {
	src   io.ReadSeeker
	start int64    // where the message starts in src
	tmp   *os.File // a spool copy of a stdin that cannot seek, removed on Close

	// Size is the message's size on the wire: after line endings become CR LF, before
	// dot-stuffing.
	Size int64
	// EightBit reports a byte with the high bit set anywhere in the message.
	EightBit bool
	// UTF8Header reports a header holding non-ASCII UTF-8, an internationalised
	// message (RFC 6532) that may only travel over SMTPUTF8. 8-bit header bytes that
	// are not UTF-8 are legacy data that qmail always passed through, and still do.
	UTF8Header bool
}

// PrepareMessage scans the message. A regular file is read in place and rewound;
// anything else is first copied to an unlinked temporary file.
func PrepareMessage(r io.Reader) (*Message, error) {
	m := &Message{}
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			if _, err := f.Seek(0, io.SeekCurrent); err == nil {
				m.src = f
			}
		}
	}
	if m.src == nil {
		tmp, err := os.CreateTemp("", "qmail-remote-")
		if err != nil {
			return nil, err
		}
		os.Remove(tmp.Name())
		if _, err := io.Copy(tmp, r); err != nil {
			tmp.Close()
			return nil, fmt.Errorf("%w: %v", errReadMessage, err)
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			tmp.Close()
			return nil, err
		}
		m.src, m.tmp = tmp, tmp
	}
	var err error
	if m.start, err = m.src.Seek(0, io.SeekCurrent); err != nil {
		m.Close()
		return nil, err
	}
	if err := m.scan(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

var errReadMessage = errors.New("unable to read message")

// Close releases the spool copy, if any.
func (m *Message) Close() error {
	if m.tmp != nil {
		return m.tmp.Close()
	}
	return nil
}

// bufs holds the buffers scan and writeData read the message through, so that a
// long-running deliverer does not allocate them per message.
var bufs = sync.Pool{New: func() any { return new([64 * 1024]byte) }}

func (m *Message) scan() error {
	bp := bufs.Get().(*[64 * 1024]byte)
	defer bufs.Put(bp)
	buf := bp[:]
	inHeader, lineStart := true, true
	var hdr []byte // the current header line's 8-bit bytes are checked per line
	var prev byte
	for {
		n, err := m.src.Read(buf)
		for _, c := range buf[:n] {
			m.Size++
			if c == '\n' && prev != '\r' {
				m.Size++ // becomes CR LF
			}
			if prev == '\r' && c != '\n' {
				m.Size++ // a bare CR becomes CR LF
			}
			if c >= 0x80 {
				m.EightBit = true
			}
			if inHeader {
				if c == '\n' {
					if lineStart {
						inHeader = false
					}
					if !m.UTF8Header && len(hdr) > 0 && utf8.Valid(hdr) {
						m.UTF8Header = true
					}
					hdr = hdr[:0]
					lineStart = true
				} else if c != '\r' {
					lineStart = false
					if c >= 0x80 || len(hdr) > 0 && len(hdr) < 4096 {
						hdr = append(hdr, c)
					}
				}
			}
			prev = c
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", errReadMessage, err)
		}
	}
}

// writeData sends the message as DATA content: every line ends in CR LF (bare LF and
// bare CR become CR LF, a partial last line is completed), a line starting with '.'
// gets another '.', and the terminating ".\r\n" follows.
func writeData(w *bufio.Writer, r io.Reader) error {
	bp := bufs.Get().(*[64 * 1024]byte)
	defer bufs.Put(bp)
	buf := bp[:]
	lineStart, cr := true, false
	for {
		n, err := r.Read(buf)
		p := buf[:n]
		for len(p) > 0 {
			if cr {
				cr = false
				w.WriteString("\r\n")
				lineStart = true
				if p[0] == '\n' {
					p = p[1:]
					continue
				}
			}
			if lineStart && p[0] == '.' {
				w.WriteByte('.')
			}
			// The rest of the line goes out as it is, up to its LF or CR.
			end := len(p)
			if i := bytes.IndexByte(p, '\n'); i >= 0 {
				end = i
			}
			if i := bytes.IndexByte(p[:end], '\r'); i >= 0 {
				end = i
			}
			w.Write(p[:end])
			if end == len(p) {
				lineStart = false
				break
			}
			if p[end] == '\r' {
				cr = true
			} else {
				w.WriteString("\r\n")
				lineStart = true
			}
			p = p[end+1:]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %v", errReadMessage, err)
		}
	}
	if cr || !lineStart {
		w.WriteString("\r\n")
	}
	_, err := w.WriteString(".\r\n")
	return err
}

// Reader returns the message from its start.
func (m *Message) Reader() (io.Reader, error) {
	if _, err := m.src.Seek(m.start, io.SeekStart); err != nil {
		return nil, err
	}
	return m.src, nil
}
