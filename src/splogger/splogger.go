// Package splogger is splogger: it reads log lines (qmail-send's) on its input and
// hands each to syslog, with a timestamp of when it arrived, at priority alert for
// "alert:" lines, warning for "warning:" lines and info otherwise.
//
// As in qmail, a line longer than 799 bytes goes out in pieces, the later ones marked
// with "<stamp>+"; bytes outside printable ASCII become '?'.
package splogger

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Syslog priorities and the default facility.
const (
	Alert    = 1
	Warning  = 4
	Info     = 6
	MailFac  = 2 // LOG_MAIL's facility number
	pieceMax = 799
)

// Sink receives one syslog message: its priority (facility*8 + level) and text.
type Sink interface {
	Log(priority int, msg string) error
}

// Run copies lines from in to sink until in ends. now gives the arrival stamps.
func Run(in io.Reader, sink Sink, facility int, now func() time.Time) error {
	br := bufio.NewReaderSize(in, 4096)
	buf := make([]byte, 0, pieceMax)
	cont := false
	var stamp string
	pri := Info
	flush := func() {
		if len(buf) == 0 {
			return
		}
		if cont {
			sink.Log(facility<<3|pri, stamp+"+"+string(buf))
		} else {
			t := now()
			stamp = fmt.Sprintf("%d.%06d", t.Unix(), t.Nanosecond()/1000)
			s := string(buf)
			pri = Info
			if strings.HasPrefix(s, "warning:") {
				pri = Warning
			}
			if strings.HasPrefix(s, "alert:") {
				pri = Alert
			}
			sink.Log(facility<<3|pri, stamp+" "+s)
			cont = true
		}
		buf = buf[:0]
	}
	for {
		c, err := br.ReadByte()
		if err != nil {
			return nil // a partial last line is dropped, as in qmail
		}
		if c == '\n' {
			flush()
			cont = false
			continue
		}
		if len(buf) == pieceMax {
			flush()
		}
		if c < 32 || c > 126 {
			c = '?'
		}
		buf = append(buf, c)
	}
}

// Syslog sends messages to the local syslog socket, in the format the C library's
// syslog() uses: "<pri>Mmm dd hh:mm:ss tag: msg". It reconnects after errors; a message
// that cannot be delivered is dropped, as syslog() drops it.
type Syslog struct {
	Path string // the socket, normally /dev/log
	Tag  string

	conn   net.Conn
	stream bool // a stream socket needs a NUL after each message
}

func (s *Syslog) dial() error {
	var err error
	for _, network := range []string{"unixgram", "unix"} {
		var c net.Conn
		if c, err = net.Dial(network, s.Path); err == nil {
			s.conn, s.stream = c, network == "unix"
			return nil
		}
	}
	return err
}

// Log implements Sink.
func (s *Syslog) Log(priority int, msg string) error {
	line := fmt.Sprintf("<%d>%s %s: %s", priority, time.Now().Format(time.Stamp), s.Tag, msg)
	for try := 0; try < 2; try++ {
		if s.conn == nil {
			if err := s.dial(); err != nil {
				return err
			}
		}
		b := []byte(line)
		if s.stream {
			b = append(b, 0)
		}
		if _, err := s.conn.Write(b); err == nil {
			return nil
		}
		s.conn.Close()
		s.conn = nil
	}
	return fmt.Errorf("syslog: unable to write to %s", s.Path)
}

// ParseArgs reads "splogger [tag [facility]]": the tag defaults to splogger, the
// facility (a number, as in qmail) to mail.
func ParseArgs(args []string) (tag string, facility int) {
	tag, facility = "splogger", MailFac
	if len(args) > 0 {
		tag = args[0]
		if len(args) > 1 {
			facility = 0
			for _, c := range args[1] {
				if c < '0' || c > '9' {
					break
				}
				facility = facility*10 + int(c-'0')
				if facility > 23 {
					facility = 23
				}
			}
		}
	}
	return tag, facility
}
