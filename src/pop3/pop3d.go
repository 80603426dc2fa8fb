package pop3

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// message is one message of the Maildir, as scanned at the start of the session.
type message struct {
	path    string // relative to the Maildir: new/x or cur/x
	size    int64
	mtime   time.Time
	deleted bool
}

// Deadliner is implemented by connections that take deadlines (sockets).
type Deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// pop3d is one authenticated session.
type pop3d struct {
	dir  string
	msgs []message
	last int // highest message number retrieved (LAST)
	r    *bufio.Reader
	w    *bufio.Writer
}

// Pop3d is qmail-pop3d: it serves the Maildir dir (relative to the working
// directory, which checkpassword set to the user's home) to a client already
// authenticated by qmail-popup, on in and out. Deletions take effect at QUIT; messages
// still in new/ then move to cur/. It returns the exit code.
func Pop3d(dir string, in io.Reader, out io.Writer, dl Deadliner) int {
	s := &pop3d{dir: dir}
	s.r = bufio.NewReaderSize(readerFunc(func(b []byte) (int, error) {
		if dl != nil {
			dl.SetReadDeadline(time.Now().Add(Timeout))
		}
		return in.Read(b)
	}), maxLine)
	s.w = bufio.NewWriterSize(writerFunc(func(b []byte) (int, error) {
		if dl != nil {
			dl.SetWriteDeadline(time.Now().Add(Timeout))
		}
		return out.Write(b)
	}), 16*1024)
	if err := s.scan(); err != nil {
		s.err("this user has no $HOME/Maildir")
		s.w.Flush()
		return 1
	}
	s.ok("")
	for {
		if s.r.Buffered() == 0 {
			// Pipelined commands are answered together.
			if s.w.Flush() != nil {
				return 1
			}
		}
		line, err := readLine(s.r)
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				s.err("command too long")
				s.w.Flush()
			}
			return 1 // no QUIT: nothing is deleted (RFC 1939)
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "QUIT":
			err := s.quit()
			if err != nil {
				s.err("unable to remove or move some messages: " + err.Error())
			} else {
				s.ok("")
			}
			s.w.Flush()
			return 0
		case "NOOP":
			s.ok("")
		case "CAPA":
			s.ok("capability list follows")
			s.w.WriteString("TOP\r\nUIDL\r\nPIPELINING\r\nIMPLEMENTATION notqmail\r\n.\r\n")
		case "STAT":
			n, size := 0, int64(0)
			for _, m := range s.msgs {
				if !m.deleted {
					n++
					size += m.size
				}
			}
			s.ok(fmt.Sprintf("%d %d", n, size))
		case "LIST", "UIDL":
			s.list(strings.ToUpper(verb) == "UIDL", arg)
		case "DELE":
			if i, ok := s.number(arg); ok {
				s.msgs[i].deleted = true
				s.ok("")
			}
		case "RSET":
			for i := range s.msgs {
				s.msgs[i].deleted = false
			}
			s.last = 0
			s.ok("")
		case "LAST":
			s.ok(strconv.Itoa(s.last))
		case "RETR":
			if i, ok := s.number(arg); ok {
				s.send(i, -1)
			}
		case "TOP":
			num, lines, _ := strings.Cut(arg, " ")
			n, err := strconv.Atoi(strings.TrimSpace(lines))
			if err != nil || n < 0 {
				s.err("syntax error")
				continue
			}
			if i, ok := s.number(num); ok {
				s.send(i, n)
			}
		default:
			s.err("unimplemented")
		}
	}
}

func (s *pop3d) ok(text string) { s.w.WriteString("+OK " + text + "\r\n") }

func (s *pop3d) err(text string) { s.w.WriteString("-ERR " + text + "\r\n") }

// scan lists new/ and cur/, oldest first, as qmail-pop3d does.
func (s *pop3d) scan() error {
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(s.dir, sub))
		if err != nil {
			return err
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			fi, err := e.Info()
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			s.msgs = append(s.msgs, message{path: sub + "/" + e.Name(), size: fi.Size(), mtime: fi.ModTime()})
		}
	}
	sort.SliceStable(s.msgs, func(i, j int) bool { return s.msgs[i].mtime.Before(s.msgs[j].mtime) })
	return nil
}

// number parses a message number and checks it names a message not deleted; it
// answers the error itself.
func (s *pop3d) number(arg string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(arg))
	if err != nil || n < 1 || n > len(s.msgs) {
		s.err("unable to find that message")
		return 0, false
	}
	if s.msgs[n-1].deleted {
		s.err("message deleted")
		return 0, false
	}
	return n - 1, true
}

// uidl is the unique part of a Maildir name (before ':'), with bytes RFC 1939 does
// not allow in a unique id replaced, and at most 70 characters.
func uidl(path string) string {
	name := filepath.Base(path)
	name, _, _ = strings.Cut(name, ":")
	b := []byte(name)
	for i, c := range b {
		if c < 0x21 || c > 0x7e {
			b[i] = '?'
		}
	}
	if len(b) > 70 {
		b = b[:70]
	}
	return string(b)
}

func (s *pop3d) list(uid bool, arg string) {
	item := func(i int) string {
		if uid {
			return fmt.Sprintf("%d %s", i+1, uidl(s.msgs[i].path))
		}
		return fmt.Sprintf("%d %d", i+1, s.msgs[i].size)
	}
	if strings.TrimSpace(arg) != "" {
		if i, ok := s.number(arg); ok {
			s.ok(item(i))
		}
		return
	}
	s.ok("")
	for i, m := range s.msgs {
		if !m.deleted {
			s.w.WriteString(item(i) + "\r\n")
		}
	}
	s.w.WriteString(".\r\n")
}

// send writes message i, CR LF terminated and dot-stuffed: all of it, or with
// lines >= 0 the header and that many lines of the body (TOP).
func (s *pop3d) send(i, lines int) {
	f, err := os.Open(filepath.Join(s.dir, s.msgs[i].path))
	if err != nil {
		s.err("unable to open that message")
		return
	}
	defer f.Close()
	s.ok("")
	if lines < 0 && i+1 > s.last {
		s.last = i + 1
	}
	r := bufio.NewReaderSize(f, 16*1024)
	inBody := false
	atStart := true
	for {
		chunk, err := r.ReadSlice('\n')
		if len(chunk) > 0 {
			if atStart {
				if inBody && lines >= 0 {
					if lines == 0 {
						break
					}
					lines--
				}
				if !inBody && (len(chunk) == 1 || string(chunk) == "\r\n") {
					inBody = true
				}
				if chunk[0] == '.' {
					s.w.WriteByte('.')
				}
			}
			complete := chunk[len(chunk)-1] == '\n'
			body := chunk
			if complete {
				body = chunk[:len(chunk)-1]
				if len(body) > 0 && body[len(body)-1] == '\r' {
					body = body[:len(body)-1]
				}
			}
			s.w.Write(body)
			if complete {
				s.w.WriteString("\r\n")
			}
			atStart = complete
		}
		if err == bufio.ErrBufferFull {
			continue // a long line: its rest follows
		}
		if err != nil {
			break
		}
	}
	if !atStart {
		s.w.WriteString("\r\n")
	}
	s.w.WriteString(".\r\n")
}

// quit deletes the messages marked and moves the rest of new/ to cur/ with the
// Maildir info ":2,".
func (s *pop3d) quit() error {
	var first error
	for _, m := range s.msgs {
		p := filepath.Join(s.dir, m.path)
		var err error
		switch {
		case m.deleted:
			err = os.Remove(p)
		case strings.HasPrefix(m.path, "new/"):
			err = os.Rename(p, filepath.Join(s.dir, "cur", filepath.Base(m.path)+":2,"))
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) && first == nil {
			first = err
		}
	}
	return first
}
