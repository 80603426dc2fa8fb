package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/testpeer"
)

func startSink(t *testing.T) (*Sink, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sink{Dir: t.TempDir(), Hostname: "sink.test"}
	go s.Serve(l)
	t.Cleanup(func() { l.Close() })
	return s, l.Addr().String()
}

func stored(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// swaks, a real SMTP client, delivers into the sink, dot-stuffed lines included.
func TestSinkAcceptsSwaks(t *testing.T) {
	swaks := testpeer.Need(t, "swaks")
	s, addr := startSink(t)
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(swaks, "--server", host, "--port", port, "--from", "a@example.org",
		"--to", "b@example.net,c@example.net", "--body", "line one\n.dotted\n").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	msgs := stored(t, s.Dir)
	if len(msgs) != 1 {
		t.Fatalf("stored %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	for _, want := range []string{"X-Sink-From: <a@example.org>\n", "X-Sink-To: <b@example.net>\n", "X-Sink-To: <c@example.net>\n", "\n.dotted\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("stored message lacks %q:\n%s", want, m)
		}
	}
}

// Send delivers to Postfix's smtp-sink, which dumps what it received.
func TestSendToPostfixSmtpSink(t *testing.T) {
	sinkCmd := testpeer.Need(t, "smtp-sink")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	// smtp-sink run by root writes as nobody: the directory must be reachable by it.
	dir, err := os.MkdirTemp("", "smtpsink-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	args := []string{"-d", dir + "/%M.", addr, "5"}
	if os.Geteuid() == 0 {
		// As root smtp-sink insists on dropping to a user.
		args = append([]string{"-u", "nobody"}, args...)
	}
	cmd := exec.Command(sinkCmd, args...)
	var sinkOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &sinkOut, &sinkOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var log bytes.Buffer
	var sendErr error
	// smtp-sink binds after it starts: retry connecting, not a timed assertion.
	for i := 0; i < 100; i++ {
		log.Reset()
		if sendErr = Send(addr, "client.test", "x@example.org", "y@example.net", []byte("Subject: hi\r\n\r\n.starts with a dot\r\n"), 10*time.Second, &log); sendErr == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if sendErr != nil {
		t.Fatalf("Send: %v\n%s\nsmtp-sink: %s", sendErr, log.String(), sinkOut.String())
	}
	cmd.Process.Kill()
	cmd.Wait()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("smtp-sink stored %d files, want 1\n%s", len(ents), log.String())
	}
	b, _ := os.ReadFile(filepath.Join(dir, ents[0].Name()))
	if !strings.Contains(string(b), "\n.starts with a dot") && !strings.Contains(string(b), "\r\n.starts with a dot") {
		t.Errorf("dot-stuffing not undone by the server; got:\n%s", b)
	}
}

// A server that refuses the recipient makes Send fail with the server's words.
func TestSendFailsOnRefusal(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 512)
		c.Write([]byte("220 x\r\n"))
		for _, r := range []string{"250 hi\r\n", "250 ok\r\n", "553 sorry, that domain isn't in my list of allowed rcpthosts\r\n"} {
			if _, err := c.Read(buf); err != nil {
				return
			}
			c.Write([]byte(r))
		}
	}()
	var log bytes.Buffer
	err = Send(l.Addr().String(), "h", "a@b", "c@d", []byte("x\r\n"), 10*time.Second, &log)
	if err == nil || !strings.Contains(err.Error(), "553") {
		t.Fatalf("Send = %v, want the 553 refusal", err)
	}
}

// A client sending an endless line is cut off, not buffered.
func TestSinkBoundsLines(t *testing.T) {
	_, addr := startSink(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go c.Write(bytes.Repeat([]byte("A"), 3*maxLine))
	b := make([]byte, 4096)
	var got []byte
	for {
		n, err := c.Read(b)
		got = append(got, b[:n]...)
		if err != nil {
			break
		}
	}
	if !strings.Contains(string(got), "500 line too long") {
		t.Fatalf("got %q, want a 500 and a hang-up", got)
	}
}
