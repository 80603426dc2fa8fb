package spawn

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/remote"
	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/testpeer"
)

// startSink runs Postfix's smtp-sink on a free port of 127.0.0.1 with extra options
// and returns the port.
func startSink(t testing.TB, opts ...string) int {
	t.Helper()
	bin := testpeer.Need(t, "smtp-sink")
	port := freePort(t)
	args := append([]string{}, opts...)
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	args = append(args, fmt.Sprintf("127.0.0.1:%d", port), "256")
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return port
		}
		if time.Now().After(end) {
			t.Fatalf("smtp-sink did not start: %s", errb.String())
		}
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// remoteHome is a sandbox home whose smtproutes sends example.test to 127.0.0.1:port,
// with both runners for it: notqmail's qmail-remote run per delivery, and in
// process with a pool.
func remoteHome(t testing.TB) (h *sandbox.Home, exe *Remote, inproc *RemoteInProcess) {
	t.Helper()
	h = sandbox.New(t, sandbox.Options{})
	if _, err := os.Lstat(filepath.Join(h.Bin, "qmail-remote")); err != nil {
		t.Skip("the sandbox's notqmail does not serve qmail-remote")
	}
	// The exec'ed qmail-remote finds the home by $QMAILHOME.
	for _, kv := range h.Env() {
		k, v, _ := strings.Cut(kv, "=")
		if k == "QMAILHOME" || k == "PATH" {
			t.Setenv(k, v)
		}
	}
	t.Setenv("NOTQMAIL_RESOLVCONF", "")
	exe = &Remote{Program: filepath.Join(h.Bin, "qmail-remote"), Dir: filepath.Join(h.Dir, "queue", "mess")}
	inproc = &RemoteInProcess{
		Control:    control.Dir{Path: filepath.Join(h.Dir, "control")},
		ResolvConf: "/etc/resolv.conf",
		TCPTO:      filepath.Join(h.Queue().LockDir(), "tcpto"),
		Pool:       &remote.Pool{},
	}
	t.Cleanup(inproc.Close)
	return h, exe, inproc
}

func setRoute(t testing.TB, h *sandbox.Home, port int) {
	t.Helper()
	p := filepath.Join(h.Dir, "control", "smtproutes")
	if err := os.WriteFile(p, []byte(fmt.Sprintf("example.test:127.0.0.1:%d\n", port)), 0644); err != nil {
		t.Fatal(err)
	}
	// Changed control files take effect within ConfigTTL; a test does not wait.
}

func messageFile(t testing.TB, text string) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "mess")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(text)
	t.Cleanup(func() { f.Close() })
	return f
}

func deliverWith(t testing.TB, r Runner, msg string) string {
	t.Helper()
	f := messageFile(t, msg)
	f.Seek(0, 0)
	recip := "bob@example.test"
	return string(r.Deliver(f, "alice@sender.test", recip, strings.LastIndexByte(recip, '@')))
}

// TestRemoteInProcessReportsMatchExec delivers the same message through notqmail's
// qmail-remote run as a program and in process (twice, the second time over a
// reused connection where the first was accepted), against smtp-sink answering
// success, 4xx and 5xx at each stage, and against a closed port: the reports must be
// byte for byte the same.
func TestRemoteInProcessReportsMatchExec(t *testing.T) {
	h, exe, inproc := remoteHome(t)
	cases := []struct {
		name   string
		opts   []string
		closed bool
		want   string // the report's start
	}{
		{name: "accepted", want: "K127.0.0.1 accepted message.\nRemote host said: 250 "},
		{name: "4xx RCPT", opts: []string{"-r", "RCPT"}, want: "Z127.0.0.1 does not like recipient.\nRemote host said: 450 "},
		{name: "5xx RCPT", opts: []string{"-f", "RCPT"}, want: "D127.0.0.1 does not like recipient.\nRemote host said: 500 "},
		{name: "4xx MAIL", opts: []string{"-r", "MAIL"}, want: "ZConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 450 "},
		{name: "5xx after DATA", opts: []string{"-f", "."}, want: "D127.0.0.1 failed after I sent the message.\nRemote host said: 500 "},
		{name: "connection refused", closed: true, want: "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var port int
			if c.closed {
				port = freePort(t)
			} else {
				port = startSink(t, c.opts...)
			}
			setRoute(t, h, port)
			inproc.mu.Lock()
			inproc.cfg = nil // read the new smtproutes now
			inproc.mu.Unlock()
			msg := "Subject: same\n\nthe same message\n.dot\n"
			want := deliverWith(t, exe, msg)
			if !strings.HasPrefix(want, c.want) {
				t.Fatalf("exec report %q, want it to start %q", want, c.want)
			}
			for i := 0; i < 2; i++ {
				if got := deliverWith(t, inproc, msg); got != want {
					t.Errorf("in-process report %d:\n%q\nexec report:\n%q", i, got, want)
				}
			}
		})
	}
}

// TestRemoteInProcessControlError: an unreadable control file is the same temporary
// failure in both paths.
func TestRemoteInProcessControlError(t *testing.T) {
	h, exe, inproc := remoteHome(t)
	if err := os.WriteFile(filepath.Join(h.Dir, "control", "smtproutes"), []byte("no colon here\n"), 0644); err != nil {
		t.Fatal(err)
	}
	want := deliverWith(t, exe, "Subject: x\n\nx\n")
	if !strings.HasPrefix(want, "ZUnable to read control files. (#4.3.0)\n") {
		t.Fatalf("exec report %q", want)
	}
	if got := deliverWith(t, inproc, "Subject: x\n\nx\n"); got != want {
		t.Errorf("in-process report %q, exec report %q", got, want)
	}
}

// TestRemoteInProcessOK decides between exec and in process by what bin/qmail-remote
// is.
func TestRemoteInProcessOK(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d := t.TempDir()
	link := filepath.Join(d, "qmail-remote")
	if err := os.Symlink(self, link); err != nil {
		t.Fatal(err)
	}
	t.Setenv(ForceExecEnv, "")
	if !RemoteInProcessOK(link) {
		t.Errorf("a symlink to this executable named qmail-remote is not run in process")
	}
	t.Setenv(ForceExecEnv, "1")
	if RemoteInProcessOK(link) {
		t.Errorf("%s=1 does not force exec", ForceExecEnv)
	}
	t.Setenv(ForceExecEnv, "")
	other := filepath.Join(d, "other-name")
	os.Symlink(self, other)
	if RemoteInProcessOK(other) {
		t.Errorf("this executable under another name is run in process")
	}
	wrapped := filepath.Join(t.TempDir(), "qmail-remote")
	os.WriteFile(wrapped, []byte("#!/bin/sh\nexec "+link+" \"$@\"\n"), 0755)
	if RemoteInProcessOK(wrapped) {
		t.Errorf("a wrapper script is run in process")
	}
	if RemoteInProcessOK(filepath.Join(d, "missing", "qmail-remote")) {
		t.Errorf("a missing program is run in process")
	}
}

// benchRemote delivers b.N messages to smtp-sink, 20 at a time as
// concurrencyremote 20 would.
func benchRemote(b *testing.B, inProcess bool) {
	h, exe, inproc := remoteHome(b)
	setRoute(b, h, startSink(b))
	var r Runner = exe
	if inProcess {
		r = inproc
	}
	msg := "Subject: bench\n\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", 64)
	b.SetParallelism(10) // with GOMAXPROCS 2: 20 at once
	before := remoteCPUTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		f := messageFile(b, msg)
		for pb.Next() {
			f.Seek(0, 0)
			if rep := r.Deliver(f, "alice@sender.test", "bob@example.test", 3); rep[0] != 'K' {
				b.Errorf("report %q", rep)
				return
			}
		}
	})
	b.StopTimer()
	// CPU of this process and the qmail-remote processes it ran, not smtp-sink's.
	b.ReportMetric(float64(remoteCPUTime()-before)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// remoteCPUTime is the user and system time of this process and its waited-for children.
func remoteCPUTime() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}

// BenchmarkRemoteExec is deliveries through notqmail's qmail-remote, a process each.
func BenchmarkRemoteExec(b *testing.B) { benchRemote(b, false) }

// BenchmarkRemoteInProcess is the same deliveries in process, connections reused.
func BenchmarkRemoteInProcess(b *testing.B) { benchRemote(b, true) }
