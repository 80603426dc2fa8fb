package smtpd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/queueclient"
)

// memQueue records what the session queues, as qmail-queue would see it: the message
// bytes, the sender and the recipients. failCode makes Close fail with that
// qmail-queue exit code (and custom text for 82).
type memQueue struct {
	mu       sync.Mutex
	queued   []queued
	failCode int
	custom   string
	opened   int
	aborted  int
}

type queued struct {
	data  string
	from  string
	rcpts []string
}

type memMessage struct {
	q      *memQueue
	buf    bytes.Buffer
	from   string
	rcpts  []string
	failed bool
	inEnv  bool
}

func (q *memQueue) open() (Message, error) {
	q.mu.Lock()
	q.opened++
	q.mu.Unlock()
	return &memMessage{q: q}, nil
}

func (m *memMessage) Write(p []byte) (int, error) {
	if m.inEnv {
		m.failed = true
	}
	return m.buf.Write(p)
}
func (m *memMessage) Fail()         { m.failed = true }
func (m *memMessage) From(s string) { m.inEnv, m.from = true, s }
func (m *memMessage) To(r string)   { m.rcpts = append(m.rcpts, r) }
func (m *memMessage) PID() int      { return 4242 }
func (m *memMessage) Close() error {
	m.q.mu.Lock()
	defer m.q.mu.Unlock()
	if m.failed || !m.inEnv {
		m.q.aborted++
		return queueclient.Text(54, "")
	}
	if m.q.failCode != 0 {
		return queueclient.Text(m.q.failCode, m.q.custom)
	}
	m.q.queued = append(m.q.queued, queued{m.buf.String(), m.from, m.rcpts})
	return nil
}

func (q *memQueue) all() []queued {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]queued(nil), q.queued...)
}

var testNow = time.Date(2026, 11, 21, 8, 5, 9, 0, time.UTC)

// testConfig is a server for example.org (and subdomains of sub.example.org) whose
// own address is 127.0.0.1.
func testConfig(q *memQueue) *Config {
	return &Config{
		Greeting:    "mx.example.org",
		LocalIPHost: "example.org",
		RcptHosts: func(d string) (bool, error) {
			return d == "example.org" || d == "xn--bcher-kva.example" || strings.HasSuffix(d, ".sub.example.org"), nil
		},
		LocalIP:    func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.1") || a == netip.IPv6Loopback() },
		RemoteIP:   "192.0.2.7",
		RemoteHost: "client.example.net",
		LocalIPStr: "192.0.2.1",
		LocalHost:  "mx.example.org",
		Queue:      q.open,
		Now:        func() time.Time { return testNow },
		Timeout:    time.Minute,
	}
}

// serve runs sessions for every connection on a loopback listener, each with a fresh
// copy of cfg made by mk, and returns the address.
func serve(t *testing.T, mk func() *Config) string {
	t.Helper()
	return loopback(t, func(c net.Conn) { Serve(c, mk()) })
}

// loopback calls handle for every connection to a new loopback listener, each in its
// own goroutine, closes the connection afterwards, and returns the address. The
// listener closes, and the handlers are waited for, when the test ends.
func loopback(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	}()
	return ln.Addr().String()
}

// dialog runs a session whose client sends input (all at once, as a pipelining
// client may) and then hangs up; it returns everything the server said.
func dialog(t *testing.T, cfg *Config, input string) string {
	t.Helper()
	var out bytes.Buffer
	Serve(struct {
		io.Reader
		io.Writer
	}{strings.NewReader(input), &out}, cfg)
	return out.String()
}

// replies splits server output into reply lines without CRLF.
func replies(out string) []string {
	var r []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		r = append(r, sc.Text())
	}
	return r
}

// python runs a python3 script with the server address in ADDR, returning stdout.
func python(t *testing.T, py, addr, script string, env ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(py, "-c", script)
	cmd.Env = append(append(cmd.Environ(), "HOST="+host, "PORT="+port), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	return string(out)
}

func swaks(t *testing.T, bin, addr string, args ...string) (string, error) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	all := append([]string{"--server", host, "--port", port, "--hide-informational", "--timeout", "30"}, args...)
	out, err := exec.Command(bin, all...).CombinedOutput()
	return string(out), err
}

func mustContain(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in:\n%s", w, got)
		}
	}
}

var _ = fmt.Sprintf
