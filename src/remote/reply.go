package remote

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits on what a hostile server can make us hold.
const (
	maxReplyLine  = 2048  // bytes kept of one reply line (RFC 5321 allows 512)
	maxReplyBytes = 65536 // bytes read for one reply before giving up
	maxReplyText  = 5000  // bytes of reply text kept for reports (qmail's HUGESMTPTEXT)
)

// Reply is one SMTP reply, possibly multi-line.
type Reply struct {
	Code  int
	Lines []string // each line without CR LF, code included; truncated at maxReplyText in all
}

// Text is the reply as qmail-remote reports it: its lines each ending in a newline,
// with NULs and other control characters replaced by '?'.
func (r Reply) Text() string {
	var b strings.Builder
	for _, l := range r.Lines {
		for i := 0; i < len(l); i++ {
			c := l[i]
			if c < 32 && c != '\t' || c == 127 {
				c = '?'
			}
			b.WriteByte(c)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Enhanced returns the enhanced status code (RFC 3463) at the start of the reply's
// text, such as "5.1.1", or "" if there is none.
func (r Reply) Enhanced() string {
	if len(r.Lines) == 0 || len(r.Lines[0]) < 5 {
		return ""
	}
	f := strings.Fields(r.Lines[0][4:])
	if len(f) == 0 {
		return ""
	}
	p := strings.Split(f[0], ".")
	if len(p) != 3 || len(p[0]) != 1 || p[0][0] != byte('0'+r.Code/100) {
		return ""
	}
	for _, s := range p[1:] {
		if s == "" || len(s) > 3 || strings.Trim(s, "0123456789") != "" {
			return ""
		}
	}
	return f[0]
}

// errProtocol is a reply that is not SMTP.
var errProtocol = errors.New("malformed SMTP reply")

// readReply reads one reply. Lines longer than maxReplyLine are cut, lines beyond
// maxReplyText bytes in all are read and dropped, and a reply longer than
// maxReplyBytes is an error, so a server cannot make us hold unbounded text.
func readReply(r *bufio.Reader) (Reply, error) {
	var rep Reply
	kept, total := 0, 0
	for {
		line, n, err := readLine(r, maxReplyLine)
		total += n
		if err != nil {
			return rep, err
		}
		if total > maxReplyBytes {
			return rep, fmt.Errorf("%w: reply longer than %d bytes", errProtocol, maxReplyBytes)
		}
		if len(line) < 3 || !isDigits(line[:3]) || len(line) > 3 && line[3] != ' ' && line[3] != '-' {
			return rep, fmt.Errorf("%w: %q", errProtocol, clip(line))
		}
		code := int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
		if code < 200 || code > 599 {
			return rep, fmt.Errorf("%w: code %d", errProtocol, code)
		}
		if rep.Lines == nil {
			rep.Code = code
		} else if code != rep.Code {
			return rep, fmt.Errorf("%w: code %d inside a %d reply", errProtocol, code, rep.Code)
		}
		if kept+len(line) <= maxReplyText {
			rep.Lines = append(rep.Lines, line)
			kept += len(line) + 1
		} else if rep.Lines == nil {
			rep.Lines = []string{line[:maxReplyText]}
			kept = maxReplyText
		}
		if len(line) == 3 || line[3] == ' ' {
			return rep, nil
		}
	}
}

// readLine reads up to LF, drops the CR before it, keeps at most max bytes and
// returns how many bytes it consumed.
func readLine(r *bufio.Reader, max int) (string, int, error) {
	var b []byte
	n := 0
	for {
		frag, err := r.ReadSlice('\n')
		n += len(frag)
		if room := max - len(b); room > 0 {
			if len(frag) > room {
				b = append(b, frag[:room]...)
			} else {
				b = append(b, frag...)
			}
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			if n > maxReplyBytes {
				return "", n, fmt.Errorf("%w: line longer than %d bytes", errProtocol, maxReplyBytes)
			}
			continue
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return "", n, err
	}
	s := strings.TrimRight(string(b), "\n")
	s = strings.TrimRight(s, "\r")
	return s, n, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
