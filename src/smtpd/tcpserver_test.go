package smtpd

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/testpeer"
)

// freePort returns a loopback port that was free a moment ago, for servers (such as
// tcpserver) that cannot report the port they bound.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// waitListening waits until addr accepts connections, failing after a generous
// bound that only guards against a server that never starts.
func waitListening(t *testing.T, addr string, exited <-chan struct{}) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("server for %s exited", addr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startTCPServer runs bin/qmail-smtpd of a sandbox under tcpserver on a loopback
// port, with extra environment settings, and returns the address.
func startTCPServer(t *testing.T, h *sandbox.Home, env ...string) string {
	t.Helper()
	return startTCPServerCmd(t, h, testpeer.Need(t, "tcpserver"), []string{filepath.Join(h.Bin, "qmail-smtpd")}, env...)
}

// startTCPServerCmd runs argv under tcpserver on a loopback port.
func startTCPServerCmd(t *testing.T, h *sandbox.Home, tcpserver string, argv []string, env ...string) string {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(tcpserver, append([]string{"-R", "-H", "-l", "mx.sandbox.example", "-c", "400", "-b", "250", "127.0.0.1", port}, argv...)...)
	cmd.Env = append(h.Env(), env...)
	exited := startLogged(t, cmd, filepath.Join(t.TempDir(), "smtpd.log"))
	addr := "127.0.0.1:" + port
	waitListening(t, addr, exited)
	return addr
}

// queuedMessages returns the messages in a sandbox queue's todo/: envelope and data.
func queuedMessages(t *testing.T, h *sandbox.Home) []queued {
	t.Helper()
	q := h.Queue()
	ents, err := os.ReadDir(filepath.Join(q.Dir, "todo"))
	if err != nil {
		t.Fatal(err)
	}
	var out []queued
	for _, e := range ents {
		id, err := strconv.ParseUint(e.Name(), 10, 64)
		if err != nil {
			continue
		}
		env, err := os.ReadFile(q.Path("todo", id))
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(q.Path("mess", id))
		if err != nil {
			t.Fatal(err)
		}
		var m queued
		m.data = string(data)
		for _, f := range strings.Split(string(env), "\x00") {
			switch {
			case strings.HasPrefix(f, "F"):
				m.from = f[1:]
			case strings.HasPrefix(f, "T"):
				m.rcpts = append(m.rcpts, f[1:])
			}
		}
		out = append(out, m)
	}
	return out
}

func writeControl(t *testing.T, h *sandbox.Home, name, text string) {
	t.Helper()
	p := filepath.Join(h.Dir, "control", name)
	if err := os.WriteFile(p, []byte(text), 0644); err != nil {
		t.Fatal(err)
	}
	os.Chown(p, h.UID, h.GID)
}

func TestTCPServerSwaks(t *testing.T) {
	sw := testpeer.Need(t, "swaks")
	h := sandbox.New(t, sandbox.Options{})
	writeControl(t, h, "databytes", "5000\n")
	addr := startTCPServer(t, h)

	out, err := swaks(t, sw, addr, "--ehlo", "client.test", "--from", "bob@example.net", "--to", "alice@sandbox.example",
		"--header", "Subject: swaks test", "--body", "hello\n.leading dot\n")
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	mustContain(t, out, "250-SIZE 5000", "250-ENHANCEDSTATUSCODES", "<-  250 2.0.0 ok ")

	out, _ = swaks(t, sw, addr, "--from", "bob@example.net", "--to", "someone@far.example")
	mustContain(t, out, "553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts")

	out, _ = swaks(t, sw, addr, "--from", "bob@example.net", "--to", "alice@sandbox.example", "--body", strings.Repeat("x", 6000))
	mustContain(t, out, "552 5.3.4 sorry, that message size exceeds my databytes limit")

	msgs := queuedMessages(t, h)
	if len(msgs) != 1 {
		t.Fatalf("queued %d messages", len(msgs))
	}
	m := msgs[0]
	if m.from != "bob@example.net" || strings.Join(m.rcpts, ",") != "alice@sandbox.example" {
		t.Errorf("envelope %q %q", m.from, m.rcpts)
	}
	mustContain(t, m.data, "Received: from unknown (HELO client.test) (127.0.0.1)\n  by mx.sandbox.example with SMTP; ",
		"Subject: swaks test\n", "\nhello\n.leading dot\n")
	if strings.Contains(m.data, "\r") {
		t.Errorf("CR left in queued message: %q", m.data)
	}
}

func TestTCPServerRelayClientAndPython(t *testing.T) {
	py := testpeer.Need(t, "python3")
	h := sandbox.New(t, sandbox.Options{})
	addr := startTCPServer(t, h, "RELAYCLIENT=")
	out := python(t, py, addr, `
import os, smtplib
s = smtplib.SMTP(os.environ["HOST"], int(os.environ["PORT"]))
code, resp = s.ehlo("py.test")
print("EHLO", code, resp.decode())
msg = "Subject: py\r\n\r\nbody line\r\n.starts with dot\r\n"
s.sendmail("p@example.net", ["x@far.example", "alice@sandbox.example"], msg)
s.sendmail("p@example.net", ["ü@bücher.example"], "Subject: utf8\r\n\r\nbody\r\n", mail_options=["SMTPUTF8"])
print("QUIT", s.quit())
`)
	mustContain(t, out, "EHLO 250", "SMTPUTF8", "QUIT (221")
	msgs := queuedMessages(t, h)
	if len(msgs) != 2 {
		t.Fatalf("queued %d messages", len(msgs))
	}
	var rc []string
	for _, m := range msgs {
		rc = append(rc, strings.Join(m.rcpts, ","))
	}
	got := strings.Join(rc, " ")
	if !strings.Contains(got, "x@far.example,alice@sandbox.example") || !strings.Contains(got, "ü@bücher.example") {
		t.Errorf("recipients %q", got)
	}
}

// TestTCPServerConcurrent runs 200 sessions at once through tcpserver.
func TestTCPServerConcurrent(t *testing.T) {
	py := testpeer.Need(t, "python3")
	h := sandbox.New(t, sandbox.Options{})
	addr := startTCPServer(t, h)
	out := python(t, py, addr, concurrentClients)
	mustContain(t, out, "ok 200")
	if n := len(queuedMessages(t, h)); n != 200 {
		t.Errorf("queued %d of 200", n)
	}
}

// concurrentClients opens 200 connections first, then sends one message on each,
// so all sessions are live together.
const concurrentClients = `
import os, smtplib, threading
host, port = os.environ["HOST"], int(os.environ["PORT"])
N = 200
barrier = threading.Barrier(N)
errors = []
def one(i):
    try:
        s = smtplib.SMTP(host, port, timeout=120)
        s.ehlo("c%d.test" % i)
        barrier.wait(timeout=120)
        s.sendmail("s%d@example.net" % i, ["alice@sandbox.example"], "Subject: %d\r\n\r\nbody %d\r\n" % (i, i))
        s.quit()
    except Exception as e:
        errors.append("%d: %r" % (i, e))
ts = [threading.Thread(target=one, args=(i,)) for i in range(N)]
for t in ts: t.start()
for t in ts: t.join()
print("\n".join(errors))
print("ok", N - len(errors))
`

// TestTCPServerStalledClient: a client that stops talking is cut off at
// timeoutsmtpd with qmail's reply.
func TestTCPServerStalledClient(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	writeControl(t, h, "timeoutsmtpd", "1\n")
	addr := startTCPServer(t, h)
	for _, stallAfter := range []string{"", "MAIL FROM:<a@b.example>\r\nRCPT TO:<alice@sandbox.example>\r\nDATA\r\npartial line"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(c, stallAfter)
		// The read ends when the server hangs up; the test's own deadline only
		// guards against a server that never does.
		c.SetReadDeadline(time.Now().Add(2 * time.Minute))
		var lines []string
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		c.Close()
		if len(lines) == 0 || lines[len(lines)-1] != "451 timeout (#4.4.2)" {
			t.Errorf("stalled after %q: server said %q", stallAfter, lines)
		}
	}
	if n := len(queuedMessages(t, h)); n != 0 {
		t.Errorf("a partial message was queued")
	}
}
