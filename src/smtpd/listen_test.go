package smtpd

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/testpeer"
)

// startListener runs a sandbox's bin/qmail-smtpd with its built-in listener.
func startListener(t *testing.T, h *sandbox.Home, args ...string) string {
	t.Helper()
	return startListenerAt(t, h, "127.0.0.1:"+freePort(t), args...)
}

func startListenerAt(t *testing.T, h *sandbox.Home, addr string, args ...string) string {
	t.Helper()
	startListenerLog(t, h, addr, filepath.Join(t.TempDir(), "smtpd.log"), args...)
	return addr
}

// startListenerLog is startListenerAt with the server's log written to logPath.
func startListenerLog(t *testing.T, h *sandbox.Home, addr, logPath string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(h.Bin, "qmail-smtpd"), append([]string{"-l", addr}, args...)...)
	cmd.Env = h.Env()
	exited := startLogged(t, cmd, logPath)
	waitListening(t, addr, exited)
}

func TestListenerConcurrent(t *testing.T) {
	py := testpeer.Need(t, "python3")
	h := sandbox.New(t, sandbox.Options{})
	addr := startListener(t, h, "-c", "250", "-i", "250")
	out := python(t, py, addr, concurrentClients)
	mustContain(t, out, "ok 200")
	if n := len(queuedMessages(t, h)); n != 200 {
		t.Errorf("queued %d of 200", n)
	}
}

func TestListenerRulesAndLimits(t *testing.T) {
	sw := testpeer.Need(t, "swaks")
	h := sandbox.New(t, sandbox.Options{})
	rules := filepath.Join(h.Dir, "control", "smtpd.rules")
	if err := os.WriteFile(rules, []byte("127.0.0.1:allow,RELAYCLIENT=\"\",DATABYTES=\"300\"\n:deny\n"), 0644); err != nil {
		t.Fatal(err)
	}
	addr := startListener(t, h, "-x", rules, "-i", "1", "-H", "mx.sandbox.example")
	out, err := swaks(t, sw, addr, "--from", "a@example.net", "--to", "x@far.example")
	if err != nil {
		t.Fatalf("relay refused: %v\n%s", err, out)
	}
	mustContain(t, out, "250-SIZE 300")

	// A second connection while one is open exceeds -i 1.
	c1, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if l, _ := bufio.NewReader(c1).ReadString('\n'); l != "220 sandbox.example ESMTP\r\n" {
		t.Fatalf("greeting %q", l)
	}
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := bufio.NewReader(c2).ReadString('\n')
	c2.Close()
	if l != "421 too many connections from your address, try again later (#4.7.0)\r\n" {
		t.Errorf("second connection got %q", l)
	}
	msgs := queuedMessages(t, h)
	if len(msgs) != 1 || msgs[0].rcpts[0] != "x@far.example" {
		t.Fatalf("queued %+v", msgs)
	}
	mustContain(t, msgs[0].data, "(127.0.0.1)\n  by mx.sandbox.example with SMTP; ")
}

func TestListenerStalledClient(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	writeControl(t, h, "timeoutsmtpd", "1\n")
	addr := startListener(t, h)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var lines []string
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) != 2 || lines[1] != "451 timeout (#4.4.2)" {
		t.Errorf("stalled client saw %q", lines)
	}
}

// TestListenerSIGTERM: after SIGTERM the listener takes no new connections, lets the
// open session finish its message, and exits 0.
func TestListenerSIGTERM(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	addr := "127.0.0.1:" + freePort(t)
	cmd := exec.Command(filepath.Join(h.Bin, "qmail-smtpd"), "-l", addr)
	cmd.Env = h.Env()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	done := make(chan struct{})
	defer func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
		}
	}()
	waitListening(t, addr, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	br.ReadString('\n')
	c.Write([]byte("MAIL FROM:<a@example.net>\r\nRCPT TO:<alice@sandbox.example>\r\nDATA\r\n"))
	for i := 0; i < 3; i++ {
		br.ReadString('\n')
	}
	cmd.Process.Signal(syscall.SIGTERM)
	// The listening socket closes; the session goes on.
	for {
		if c2, err := net.Dial("tcp", addr); err != nil {
			break
		} else {
			c2.Close()
		}
	}
	c.Write([]byte("Subject: after SIGTERM\r\n\r\nstill here\r\n.\r\nQUIT\r\n"))
	l, _ := br.ReadString('\n')
	if !strings.HasPrefix(l, "250 ok ") {
		t.Errorf("message after SIGTERM: %q", l)
	}
	br.ReadString('\n')
	if err := <-exited; err != nil {
		t.Errorf("exit: %v", err)
	}
	close(done)
	if n := len(queuedMessages(t, h)); n != 1 {
		t.Errorf("queued %d", n)
	}
}

// TestSocketActivation hands qmail-smtpd a listening socket as descriptor 3 with
// LISTEN_FDS and LISTEN_PID, as systemd does.
func TestSocketActivation(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// sh's $$ is the pid that exec keeps for qmail-smtpd.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0"`, filepath.Join(h.Bin, "qmail-smtpd"))
	cmd.Env = h.Env()
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, _ := bufio.NewReader(c).ReadString('\n')
	if l != "220 sandbox.example ESMTP\r\n" {
		t.Errorf("greeting %q", l)
	}
}

// startLogged starts a server with its output in logPath, kills it when the test ends
// (showing the log if the test failed), and returns a channel closed when it exits.
func startLogged(t *testing.T, cmd *exec.Cmd, logPath string) <-chan struct{} {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("server log:\n%s", b)
		}
	})
	return exited
}
