// Command smtpsend is the matrix test kit's SMTP tool, built static (CGO off) so it runs
// inside any root: `smtpsend send` delivers one message to an SMTP server and fails
// unless the server accepts it; `smtpsend sink` is a tiny SMTP server that stores every
// message it accepts in a directory, standing in for the rest of the Internet.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "send":
		err = sendMain(os.Args[2:])
	case "sink":
		err = sinkMain(os.Args[2:])
	case "wait":
		err = waitMain(os.Args[2:])
	case "freeport":
		// For scripts that must pick a listening port for a server they start.
		var l net.Listener
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err == nil {
			fmt.Println(l.Addr().(*net.TCPAddr).Port)
			l.Close()
		}
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "smtpsend:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: smtpsend send -addr host:port -from ADDR -to ADDR [-subject S] [-helo NAME] [-timeout D]\n       smtpsend sink -addr 127.0.0.1:port -dir DIR [-hostname NAME]\n       smtpsend wait -addr host:port [-timeout D]\n       smtpsend freeport")
	os.Exit(2)
}

func sendMain(args []string) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	addr := fs.String("addr", "", "server host:port")
	from := fs.String("from", "", "envelope sender")
	to := fs.String("to", "", "envelope recipient")
	subject := fs.String("subject", "notqmail matrix test", "Subject header")
	helo := fs.String("helo", "matrix.invalid", "HELO name")
	timeout := fs.Duration("timeout", 60*time.Second, "limit for the whole session")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" || *to == "" {
		return errors.New("send needs -addr and -to")
	}
	msg := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\n\r\nThis message was sent by the notqmail test kit.\r\n",
		*from, *to, *subject, time.Now().UTC().Format(time.RFC1123Z))
	return Send(*addr, *helo, *from, *to, []byte(msg), *timeout, os.Stderr)
}

// Send runs one SMTP session that delivers msg (CRLF lines) from -> to, logging the
// dialogue to log. It fails unless the server accepts the message after DATA.
func Send(addr, helo, from, to string, msg []byte, timeout time.Duration, log io.Writer) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	r := bufio.NewReader(io.LimitReader(c, 1<<20))
	expect := func(want int) error {
		code, text, err := readReply(r)
		fmt.Fprintf(log, "S: %d %s\n", code, text)
		if err != nil {
			return err
		}
		if code != want {
			return fmt.Errorf("server said %d %s, want %d", code, text, want)
		}
		return nil
	}
	cmd := func(line string, want int) error {
		fmt.Fprintf(log, "C: %s\n", line)
		if _, err := io.WriteString(c, line+"\r\n"); err != nil {
			return err
		}
		return expect(want)
	}
	if err := expect(220); err != nil {
		return err
	}
	for _, s := range []struct {
		line string
		want int
	}{{"HELO " + helo, 250}, {"MAIL FROM:<" + from + ">", 250}, {"RCPT TO:<" + to + ">", 250}, {"DATA", 354}} {
		if err := cmd(s.line, s.want); err != nil {
			return err
		}
	}
	if _, err := c.Write(dotStuff(msg)); err != nil {
		return err
	}
	fmt.Fprintf(log, "C: (%d bytes of message)\n", len(msg))
	if err := expect(250); err != nil {
		return err
	}
	return cmd("QUIT", 221)
}

// dotStuff returns msg with leading dots doubled and the end-of-data line added.
func dotStuff(msg []byte) []byte {
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(msg), "\n") {
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, ".") {
			b.WriteByte('.')
		}
		b.WriteString(line)
	}
	s := b.String()
	if !strings.HasSuffix(s, "\n") {
		s += "\r\n"
	}
	return []byte(s + ".\r\n")
}

// readReply reads one (possibly multi-line) SMTP reply.
func readReply(r *bufio.Reader) (int, string, error) {
	var text []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, strings.Join(text, " "), fmt.Errorf("reading reply: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return 0, line, fmt.Errorf("malformed reply %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			return 0, line, fmt.Errorf("malformed reply %q", line)
		}
		text = append(text, strings.TrimSpace(line[3:]))
		if len(line) == 3 || line[3] != '-' {
			return code, strings.Join(text, " "), nil
		}
	}
}

// waitMain waits until something answers with an SMTP greeting at -addr, so the kit
// knows a server it started is ready; it gives up after -timeout.
func waitMain(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	addr := fs.String("addr", "", "server host:port")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	deadline := time.Now().Add(*timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = greeting(*addr); last == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("no SMTP greeting from %s within %v: %v", *addr, *timeout, last)
}

func greeting(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	code, text, err := readReply(bufio.NewReader(io.LimitReader(c, 64<<10)))
	if err != nil {
		return err
	}
	if code != 220 {
		return fmt.Errorf("greeting %d %s", code, text)
	}
	io.WriteString(c, "QUIT\r\n")
	return nil
}

func sinkMain(args []string) error {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	dir := fs.String("dir", "", "directory for accepted messages")
	hostname := fs.String("hostname", "sink.invalid", "name in the greeting")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("sink needs -dir")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "smtpsend sink: listening on %s, storing into %s\n", l.Addr(), *dir)
	s := &Sink{Dir: *dir, Hostname: *hostname}
	return s.Serve(l)
}

// Sink is an SMTP server that accepts every message and stores each one as a file
// in Dir: the envelope as "X-Sink-From:" and "X-Sink-To:" lines, then the message.
type Sink struct {
	Dir      string
	Hostname string
	n        atomic.Int64
}

// Limits that keep a hostile or broken client from growing memory without bound.
const (
	maxLine       = 4096
	maxMessage    = 32 << 20
	maxRecipients = 1000
)

// Serve accepts connections until l is closed.
func (s *Sink) Serve(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go s.session(c)
	}
}

func (s *Sink) session(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, maxLine)
	w := bufio.NewWriter(c)
	reply := func(line string) bool {
		w.WriteString(line + "\r\n")
		return w.Flush() == nil
	}
	if !reply("220 " + s.Hostname + " ESMTP sink") {
		return
	}
	var from string
	var to []string
	haveFrom := false
	for {
		c.SetReadDeadline(time.Now().Add(5 * time.Minute))
		line, err := readLine(r)
		if err != nil {
			if errors.Is(err, errLong) {
				reply("500 line too long")
			}
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "HELO", "EHLO":
			reply("250 " + s.Hostname)
		case "MAIL":
			a, ok := pathArg(arg, "FROM:")
			if !ok {
				reply("501 syntax: MAIL FROM:<address>")
				continue
			}
			from, haveFrom, to = a, true, nil
			reply("250 ok")
		case "RCPT":
			a, ok := pathArg(arg, "TO:")
			switch {
			case !haveFrom:
				reply("503 MAIL first")
			case !ok || a == "":
				reply("501 syntax: RCPT TO:<address>")
			case len(to) >= maxRecipients:
				reply("452 too many recipients")
			default:
				to = append(to, a)
				reply("250 ok")
			}
		case "DATA":
			if len(to) == 0 {
				reply("503 RCPT first")
				continue
			}
			reply("354 go ahead")
			body, err := readData(r)
			if err != nil {
				if errors.Is(err, errLong) {
					reply("552 message too big")
				}
				return
			}
			if err := s.store(from, to, body); err != nil {
				reply("451 cannot store: " + err.Error())
			} else {
				reply("250 stored")
			}
			from, haveFrom, to = "", false, nil
		case "RSET":
			from, haveFrom, to = "", false, nil
			reply("250 ok")
		case "NOOP":
			reply("250 ok")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 unimplemented")
		}
	}
}

var errLong = errors.New("too long")

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", errLong
	}
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

func readData(r *bufio.Reader) ([]byte, error) {
	var b []byte
	for {
		line, err := readLine(r)
		if err != nil {
			return nil, err
		}
		if line == "." {
			return b, nil
		}
		line = strings.TrimPrefix(line, ".")
		if len(b)+len(line)+1 > maxMessage {
			return nil, errLong
		}
		b = append(append(b, line...), '\n')
	}
}

// pathArg parses "FROM:<addr> params" or "TO:<addr>".
func pathArg(arg, prefix string) (string, bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", false
	}
	rest := strings.TrimSpace(arg[len(prefix):])
	if !strings.HasPrefix(rest, "<") {
		return "", false
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", false
	}
	return rest[1:end], true
}

// store writes the message under a temporary name and renames it, so a reader never
// sees half a message.
func (s *Sink) store(from string, to []string, body []byte) error {
	n := s.n.Add(1)
	name := fmt.Sprintf("%d.%d.%d", time.Now().UnixNano(), os.Getpid(), n)
	tmp := filepath.Join(s.Dir, "."+name+".tmp")
	var head strings.Builder
	fmt.Fprintf(&head, "X-Sink-From: <%s>\n", from)
	for _, t := range to {
		fmt.Fprintf(&head, "X-Sink-To: <%s>\n", t)
	}
	if err := os.WriteFile(tmp, append([]byte(head.String()), body...), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.Dir, name))
}
