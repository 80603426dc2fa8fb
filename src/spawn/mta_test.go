package spawn

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/testpeer"
)

// workerPIDs lists qmail-lspawn's qmail-local workers, from /proc.
func workerPIDs(lspawn int) []int {
	var pids []int
	for _, c := range sandbox.ChildProcs(lspawn) {
		cl, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(c.PID), "cmdline"))
		if string(cl) == "bin/qmail-local\x00"+WorkerFlag+"\x00" {
			pids = append(pids, c.PID)
		}
	}
	return pids
}

// startSMTPD runs the home's qmail-smtpd with its built-in listener on 127.0.0.1.
func startSMTPD(t *testing.T, h *sandbox.Home) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(filepath.Join(h.Bin, "qmail-smtpd"), "-l", addr)
	cmd.Env = h.Env()
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitUntil(t, "qmail-smtpd listening on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

// TestMTAThroughWorkers runs the whole MTA: messages sent over SMTP (swaks) reach the
// Maildir through a qmail-local worker under qmail-lspawn; with the workers turned
// off (NOTQMAIL_LOCAL_WORKERS=0) they arrive the same way without one.
func TestMTAThroughWorkers(t *testing.T) {
	sw := testpeer.Need(t, "swaks")
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("off=%v", off), func(t *testing.T) {
			h := sandbox.New(t, sandbox.Options{Users: []string{"alice"}})
			var env []string
			if off {
				env = append(env, WorkersOffEnv+"=0")
			}
			m := h.StartMTA(t, sandbox.MTAOptions{Env: env})
			addr := startSMTPD(t, h)
			host, port, _ := net.SplitHostPort(addr)
			const n = 5
			for i := 0; i < n; i++ {
				out, err := exec.Command(sw, "--server", host, "--port", port, "--hide-informational",
					"--timeout", "30", "--from", "joe@example.net", "--to", "alice@"+h.Domain,
					"--header", fmt.Sprintf("Subject: worker test %d", i), "--body", "hello\n").CombinedOutput()
				if err != nil {
					t.Fatalf("swaks: %v\n%s", err, out)
				}
			}
			msgs := h.WaitMessages(t, "alice", n)
			for _, msg := range msgs {
				if !bytes.Contains(msg.Data, []byte("Delivered-To: alice@"+h.Domain+"\n")) ||
					!bytes.Contains(msg.Data, []byte("Return-Path: <joe@example.net>\n")) {
					t.Errorf("delivered message:\n%s", msg.Data)
				}
			}
			lspawn := m.Children()["qmail-lspawn"]
			if lspawn == 0 {
				t.Fatalf("no qmail-lspawn under qmail-start: %v", m.Children())
			}
			// Workers stay for their idle time (30 s), far longer than this check.
			if w := workerPIDs(lspawn); off && len(w) != 0 || !off && len(w) != 1 {
				t.Errorf("workers under qmail-lspawn: %v (turned off: %v)\nlog:\n%s", w, off, m.Output())
			}
			workers := workerPIDs(lspawn)
			if err := m.Stop(); err != nil {
				t.Errorf("stop: %v\nlog:\n%s", err, m.Output())
			}
			// Once qmail-send has closed qmail-lspawn's input, the workers go too
			// (qmail-start does not wait for qmail-lspawn, which may still be
			// closing them).
			for _, pid := range workers {
				waitUntil(t, fmt.Sprintf("worker %d to exit", pid), func() bool { return gone(pid) })
			}
		})
	}
}
