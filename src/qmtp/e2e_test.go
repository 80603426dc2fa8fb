package qmtp_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/sandbox"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// daemon starts a long-running program of the home, stopped with SIGTERM at the end.
func daemon(t *testing.T, h *sandbox.Home, log *sandbox.Log, prog string, args ...string) {
	t.Helper()
	cmd := h.Command(prog, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Errorf("%s did not stop; log:\n%s", prog, log.String())
		}
	})
}

// waitListening waits until something accepts connections on addr; the bound only
// turns a server that never starts into a failure.
func waitListening(t *testing.T, addr string, log *sandbox.Log) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s:\n%s", addr, log.String())
}

func writeControl(t *testing.T, h *sandbox.Home, name, value string) {
	t.Helper()
	p := filepath.Join(h.Dir, "control", name)
	if err := os.WriteFile(p, []byte(value), 0644); err != nil {
		t.Fatal(err)
	}
	os.Chown(p, h.UID, h.GID)
}

// A null client hands 100 messages to a hub through qmail-qmqpc and qmail-qmqpd; the
// hub delivers them all.
func TestNullClientThroughQMQP(t *testing.T) {
	hub := sandbox.New(t, sandbox.Options{})
	client := sandbox.New(t, sandbox.Options{Domain: "null.example", Users: []string{}})
	log := &sandbox.Log{}
	daemon(t, hub, log, "qmail-start", "./Maildir/")
	addr := freePort(t)
	daemon(t, hub, log, "qmail-qmqpd", "-l", addr, "-H", "hub.example")
	waitListening(t, addr, log)
	writeControl(t, client, "qmqpservers", "127.0.0.9:1\n"+addr+"\n") // the first is down

	const n = 100
	for i := 0; i < n; i++ {
		cmd := client.Command("qmail-inject", "alice@"+hub.Domain)
		cmd.Env = append(cmd.Env, "QMAILQUEUE=bin/qmail-qmqpc")
		cmd.Stdin = strings.NewReader(fmt.Sprintf("Subject: qmqp %d\n\nmessage %d\n", i, i))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("qmail-inject %d: %v\n%s\n%s", i, err, out, log.String())
		}
	}
	msgs := hub.WaitMessages(t, "alice", n)
	seen := map[string]bool{}
	for _, m := range msgs {
		s := string(m.Data)
		if !strings.Contains(s, "\n  by hub.example with QMQP; ") || !strings.Contains(s, "From: ") {
			t.Errorf("delivered:\n%s", s)
		}
		if i := strings.Index(s, "Subject: qmqp "); i >= 0 {
			seen[strings.SplitN(s[i:], "\n", 2)[0]] = true
		}
	}
	if len(msgs) != n || len(seen) != n {
		t.Errorf("%d messages, %d distinct, want %d", len(msgs), len(seen), n)
	}
	// The client has no queue activity of its own.
	if ents, _ := os.ReadDir(filepath.Join(client.Dir, "queue", "todo")); len(ents) != 0 {
		t.Errorf("null client queued %d messages locally", len(ents))
	}
}

func TestQMQPCRefusals(t *testing.T) {
	hub := sandbox.New(t, sandbox.Options{})
	client := sandbox.New(t, sandbox.Options{Domain: "null.example", Users: []string{}})
	log := &sandbox.Log{}
	addr := freePort(t)
	daemon(t, hub, log, "qmail-qmqpd", "-l", addr)
	waitListening(t, addr, log)
	inject := func(env ...string) (string, error) {
		cmd := client.Command("qmail-inject", "alice@"+hub.Domain)
		cmd.Env = append(cmd.Env, "QMAILQUEUE=bin/qmail-qmqpc")
		cmd.Env = append(cmd.Env, env...)
		cmd.Stdin = strings.NewReader("Subject: big\n\n" + strings.Repeat("x", 5000) + "\n")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// No servers: a temporary failure, nothing lost.
	if out, err := inject(); err == nil || !strings.Contains(out, "unable to read configuration") {
		t.Errorf("without qmqpservers: %v %s", err, out)
	}
	// The hub refuses a message over its databytes: its reason reaches the sender.
	writeControl(t, hub, "databytes", "1000\n")
	writeControl(t, client, "qmqpservers", addr+"\n")
	out, err := inject()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 100 || !strings.Contains(out, "databytes limit") {
		t.Errorf("over databytes: %v %s", err, out)
	}
	// A server that is down: temporary.
	writeControl(t, client, "qmqpservers", "127.0.0.9:1\n")
	if out, err := inject(); err == nil || strings.Contains(out, "databytes") {
		t.Errorf("server down: %v %s", err, out)
	}
}
