// Package pop3 is qmail-popup and qmail-pop3d.
//
// qmail-popup greets a POP3 client, reads USER and PASS (or APOP), and runs its
// subprogram, a checkpassword program, with "user\0password\0timestamp\0" on
// descriptor 3. checkpassword checks the password, becomes the user, changes to the
// user's home and runs qmail-pop3d, which serves the rest of the session on the
// Maildir. A failed check is "-ERR authorization failed" and the end of the session,
// so a client gets one try per connection.
//
// Beyond qmail: CAPA (RFC 2449), STLS (RFC 2595) with the certificates of
// control/servercert.pem, implicit TLS (port 995), and a refusal of USER/PASS on an
// unencrypted connection unless POP3PLAINTEXT is set in the environment (for example
// by a tcprules rule for the local network). APOP sends no password in clear text and
// is always allowed.
package pop3

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Timeout is the time limit for each read and write, as qmail-popup and qmail-pop3d
// have it.
const Timeout = 1200 * time.Second

// maxLine bounds a command line; RFC 2449 allows 255 octets.
const maxLine = 1024

// PlaintextEnv is the environment variable that allows USER/PASS without TLS.
const PlaintextEnv = "POP3PLAINTEXT"

// PopupConfig is one qmail-popup session's setup.
type PopupConfig struct {
	Hostname string
	Child    []string    // checkpassword and its arguments (qmail-pop3d Maildir)
	TLS      *tls.Config // nil: no STLS
	Implicit bool        // TLS from the first byte (pop3s)
	Plain    bool        // USER/PASS allowed without TLS
	Env      []string    // the child's environment
	Timeout  time.Duration
	Log      io.Writer
}

// Errors in qmail-popup's words.
const (
	errAuth     = "-ERR authorization failed"
	errFirst    = "-ERR authorization first"
	errSyntax   = "-ERR syntax error"
	errUserPass = "-ERR USER first"
	errPlain    = "-ERR [AUTH] plain-text passwords need an encrypted connection; use STLS"
	errNoTLS    = "-ERR TLS not available"
	errTooLong  = "-ERR command too long"
)

// popup is one session.
type popup struct {
	cfg   *PopupConfig
	raw   net.Conn // nil when the client is on descriptors that are not a socket
	in    io.Reader
	out   io.Writer
	r     *bufio.Reader
	w     *bufio.Writer
	tls   *tls.Conn
	stamp string
}

// Popup serves a client on conn (a socket, or any reader/writer pair when TLS is not
// wanted). It returns the exit code: 0 after a session handed to the subprogram, 1
// after a failed authorization or a client that left, 111 on a local problem.
func Popup(raw net.Conn, in io.Reader, out io.Writer, cfg PopupConfig) int {
	if cfg.Timeout <= 0 {
		cfg.Timeout = Timeout
	}
	p := &popup{cfg: &cfg, raw: raw, in: in, out: out}
	if raw != nil {
		p.in, p.out = raw, raw
	}
	defer func() {
		if p.tls != nil {
			// close_notify, so the client knows the session ended rather than broke.
			p.raw.SetWriteDeadline(time.Now().Add(p.cfg.Timeout))
			p.tls.CloseWrite()
		}
	}()
	if cfg.Implicit {
		if cfg.TLS == nil || raw == nil {
			return 111
		}
		if !p.startTLS() {
			return 1
		}
	}
	p.reset()
	p.stamp = fmt.Sprintf("<%d.%d@%s>", os.Getpid(), time.Now().Unix(), cfg.Hostname)
	p.reply("+OK " + p.stamp)
	var user string
	for {
		line, err := p.readLine()
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				p.reply(errTooLong)
			}
			return 1
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "QUIT":
			p.reply("+OK ")
			return 0
		case "CAPA":
			p.capa()
		case "STLS":
			switch {
			case p.tls != nil:
				p.reply("-ERR already using TLS")
			case p.cfg.TLS == nil || p.raw == nil:
				p.reply(errNoTLS)
			default:
				p.reply("+OK begin TLS negotiation")
				if !p.startTLS() {
					return 1
				}
				p.reset()
				user = "" // RFC 2595: what came before TLS is forgotten
			}
		case "USER":
			if !p.plainAllowed() {
				p.reply(errPlain)
				continue
			}
			if arg == "" {
				p.reply(errSyntax)
				continue
			}
			user = arg
			p.reply("+OK ")
		case "PASS":
			if !p.plainAllowed() {
				p.reply(errPlain)
				continue
			}
			if user == "" {
				p.reply(errUserPass)
				continue
			}
			return p.run(user, arg, p.stamp)
		case "APOP":
			name, digest, ok := strings.Cut(arg, " ")
			if !ok || name == "" || digest == "" {
				p.reply(errSyntax)
				continue
			}
			return p.run(name, digest, p.stamp)
		default:
			p.reply(errFirst)
		}
	}
}

func (p *popup) plainAllowed() bool { return p.tls != nil || p.cfg.Plain }

func (p *popup) capa() {
	lines := []string{"+OK capability list follows", "TOP", "UIDL"}
	if p.plainAllowed() {
		lines = append(lines, "USER")
	}
	if p.tls == nil && p.cfg.TLS != nil && p.raw != nil {
		lines = append(lines, "STLS")
	}
	lines = append(lines, "IMPLEMENTATION notqmail", ".")
	p.reply(strings.Join(lines, "\r\n"))
}

func (p *popup) reset() {
	p.r = bufio.NewReaderSize(readerFunc(p.read), maxLine)
	p.w = bufio.NewWriterSize(writerFunc(p.write), 1024)
}

func (p *popup) conn() (io.Reader, io.Writer) {
	if p.tls != nil {
		return p.tls, p.tls
	}
	return p.in, p.out
}

func (p *popup) read(b []byte) (int, error) {
	if p.raw != nil {
		p.raw.SetReadDeadline(time.Now().Add(p.cfg.Timeout))
	}
	r, _ := p.conn()
	return r.Read(b)
}

func (p *popup) write(b []byte) (int, error) {
	if p.raw != nil {
		p.raw.SetWriteDeadline(time.Now().Add(p.cfg.Timeout))
	}
	_, w := p.conn()
	return w.Write(b)
}

func (p *popup) reply(s string) {
	p.w.WriteString(s + "\r\n")
	p.w.Flush()
}

func (p *popup) startTLS() bool {
	p.raw.SetDeadline(time.Now().Add(p.cfg.Timeout))
	c := tls.Server(p.raw, p.cfg.TLS)
	if err := c.Handshake(); err != nil {
		if p.cfg.Log != nil {
			fmt.Fprintf(p.cfg.Log, "qmail-popup: TLS handshake failed: %v\n", err)
		}
		return false
	}
	p.raw.SetDeadline(time.Time{})
	p.tls = c
	return true
}

var errLineTooLong = errors.New("line too long")

// readLine reads a command line, CR LF or LF terminated.
func (p *popup) readLine() (string, error) {
	return readLine(p.r)
}

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return "", errLineTooLong
	}
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(line), "\r\n")
	return s, nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// run hands the session to checkpassword. Without TLS the child gets the client's
// descriptors; with TLS, pipes that this process relays through the TLS connection.
func (p *popup) run(user, pass, stamp string) int {
	if len(p.cfg.Child) == 0 {
		return 111
	}
	authR, authW, err := os.Pipe()
	if err != nil {
		p.reply("-ERR unable to set up authorization")
		return 111
	}
	cmd := exec.Command(p.cfg.Child[0], p.cfg.Child[1:]...)
	cmd.Env = p.cfg.Env
	cmd.ExtraFiles = []*os.File{authR} // descriptor 3
	cmd.Stderr = os.Stderr
	var relay func()
	// Relay when the child cannot have the client's descriptor: under TLS, or when
	// the client already sent more (which sits in our buffer).
	if p.tls != nil || p.raw != nil && p.r.Buffered() > 0 {
		if relay = p.pipes(cmd); relay == nil {
			authR.Close()
			authW.Close()
			p.reply("-ERR unable to set up the session")
			return 111
		}
	} else if p.raw != nil {
		f, err := fileOf(p.raw)
		if err != nil {
			authR.Close()
			authW.Close()
			p.reply("-ERR unable to hand over the connection")
			return 111
		}
		defer f.Close()
		p.raw.SetDeadline(time.Time{}) // the child keeps its own time
		cmd.Stdin, cmd.Stdout = f, f
	} else {
		cmd.Stdin, cmd.Stdout = p.in, p.out
	}
	if err := cmd.Start(); err != nil {
		authR.Close()
		authW.Close()
		p.reply("-ERR unable to run the password checker")
		return 111
	}
	authR.Close()
	// Write and forget: a checkpassword that exits early must not make us hang.
	go func() {
		authW.Write([]byte(user + "\x00" + pass + "\x00" + stamp + "\x00"))
		authW.Close()
	}()
	if relay != nil {
		relay()
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.Exited():
		p.reply(errAuth)
		return 1
	default:
		p.reply("-ERR aack, child crashed")
		return 111
	}
}

// pipes gives the child pipes for its descriptors 0 and 1 and returns the relay
// between them and the client, which ends when the child closes its output.
func (p *popup) pipes(cmd *exec.Cmd) func() {
	toChild, err1 := cmd.StdinPipe()
	fromChild, err2 := cmd.StdoutPipe()
	if err1 != nil || err2 != nil {
		return nil
	}
	return func() {
		var mu sync.Mutex
		done := false
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Whatever the client already sent (pipelined commands) goes first.
			if n := p.r.Buffered(); n > 0 {
				b, _ := p.r.Peek(n)
				toChild.Write(b)
			}
			io.Copy(toChild, readerFunc(func(b []byte) (int, error) {
				mu.Lock()
				if done {
					mu.Unlock()
					return 0, io.EOF
				}
				p.raw.SetReadDeadline(time.Now().Add(p.cfg.Timeout))
				mu.Unlock()
				r, _ := p.conn()
				return r.Read(b)
			}))
			toChild.Close()
		}()
		io.Copy(writerFunc(p.write), fromChild)
		// The child is done: stop reading from the client. The lock makes sure the
		// reader cannot set a later deadline after this one.
		mu.Lock()
		done = true
		p.raw.SetReadDeadline(time.Now())
		mu.Unlock()
		wg.Wait()
	}
}

// fileOf returns a descriptor for a socket, for the child to inherit.
func fileOf(c net.Conn) (*os.File, error) {
	type filer interface{ File() (*os.File, error) }
	if f, ok := c.(filer); ok {
		return f.File()
	}
	return nil, syscall.ENOTSOCK
}
