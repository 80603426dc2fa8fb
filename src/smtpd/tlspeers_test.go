package smtpd

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/certs/testca"
	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/testpeer"
)

// addUser adds a qmail-chkpw user with the built qmail-chkpw-passwd.
func addUser(t *testing.T, h *sandbox.Home, user, pass string) {
	t.Helper()
	cmd := h.Command("qmail-chkpw-passwd", "add", user)
	cmd.Stdin = strings.NewReader(pass + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qmail-chkpw-passwd: %v\n%s", err, out)
	}
}

// sClient runs openssl s_client against addr (STARTTLS when starttls), verifying
// against the CA, and returns its output and whether it succeeded.
func sClient(t *testing.T, addr, ca string, starttls bool, extra ...string) (string, bool) {
	t.Helper()
	args := []string{"s_client", "-connect", addr, "-CAfile", ca, "-verify_return_error", "-brief"}
	if starttls {
		args = append(args, "-starttls", "smtp")
	}
	cmd := exec.Command(testpeer.Need(t, "openssl"), append(args, extra...)...)
	cmd.Stdin = strings.NewReader("QUIT\r\n")
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// TestOpenSSLAndSwaksStartTLS: under tcpserver, openssl s_client gets each
// domain's certificate by SNI (and the default without SNI) over STARTTLS; swaks
// authenticates through qmail-chkpw, and a wrong password never relays.
func TestOpenSSLAndSwaksStartTLS(t *testing.T) {
	sw := testpeer.Need(t, "swaks")
	tcpserver := testpeer.Need(t, "tcpserver")
	h := sandbox.New(t, sandbox.Options{})
	ca := installCerts(t, h)
	addUser(t, h, "alice", "s3cret")
	addr := startTCPServerCmd(t, h, tcpserver, []string{filepath.Join(h.Bin, "qmail-smtpd"), "mx.sandbox.example", filepath.Join(h.Bin, "qmail-chkpw"), "/bin/true"})

	for sni, cn := range map[string]string{"one.example.org": "one.example.org", "two.example.com": "two.example.com", "": "mx.sandbox.example"} {
		var extra []string
		if sni != "" {
			extra = []string{"-servername", sni, "-verify_hostname", sni}
		} else {
			extra = []string{"-noservername"}
		}
		out, ok := sClient(t, addr, ca, true, extra...)
		if !ok || !strings.Contains(out, "Verification: OK") || !strings.Contains(out, "Peer certificate: CN = "+cn) {
			t.Errorf("SNI %q: want CN %s:\n%s", sni, cn, out)
		}
	}

	out, err := swaks(t, sw, addr, "--tls", "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "wrong",
		"--from", "alice@sandbox.example", "--to", "x@far.example")
	if err == nil {
		t.Fatalf("wrong password accepted:\n%s", out)
	}
	mustContain(t, out, "535 5.7.8 authorization failed")
	out, err = swaks(t, sw, addr, "--from", "alice@sandbox.example", "--to", "x@far.example", "--auth", "PLAIN",
		"--auth-user", "alice", "--auth-password", "s3cret")
	if err == nil || !strings.Contains(out, "Host did not advertise authentication") {
		t.Fatalf("AUTH on plain text:\n%s", out)
	}
	if n := len(queuedMessages(t, h)); n != 0 {
		t.Fatalf("queued %d messages without authentication", n)
	}
	out, err = swaks(t, sw, addr, "--tls", "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "s3cret",
		"--from", "alice@sandbox.example", "--to", "x@far.example")
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	msgs := queuedMessages(t, h)
	if len(msgs) != 1 || msgs[0].rcpts[0] != "x@far.example" {
		t.Fatalf("queued %+v", msgs)
	}
	mustContain(t, msgs[0].data, "with ESMTPSA (TLSv1.3 ", "authenticated as alice); ")

	// $SMTPS: implicit TLS under tcpserver.
	addr465 := startTCPServerCmd(t, h, tcpserver, []string{filepath.Join(h.Bin, "qmail-smtpd")}, "SMTPS=1")
	if out, ok := sClient(t, addr465, ca, false, "-servername", "one.example.org"); !ok || !strings.Contains(out, "Peer certificate: CN = one.example.org") {
		t.Errorf("implicit TLS under tcpserver:\n%s", out)
	}
}

// TestImplicitTLSSubmissionListener: the built-in listener on a port-465-style
// socket (-T -S): SNI by openssl, AUTH required before MAIL, swaks relays after
// AUTH; plain text, an untrusted, expired or wrong-name certificate end in log
// lines that say why, and the server goes on.
func TestImplicitTLSSubmissionListener(t *testing.T) {
	sw := testpeer.Need(t, "swaks")
	h := sandbox.New(t, sandbox.Options{})
	ca := installCerts(t, h)
	addUser(t, h, "alice", "s3cret")
	logPath := filepath.Join(t.TempDir(), "smtpd.log")
	addr := "127.0.0.1:" + freePort(t)
	startListenerLog(t, h, addr, logPath, "-T", "-S", "mx.sandbox.example", filepath.Join(h.Bin, "qmail-chkpw"), "/bin/true")

	out, ok := sClient(t, addr, ca, false, "-servername", "two.example.com")
	if !ok || !strings.Contains(out, "Peer certificate: CN = two.example.com") {
		t.Errorf("SNI two.example.com:\n%s", out)
	}
	out, err := swaks(t, sw, addr, "--tlsc", "--from", "a@example.net", "--to", "alice@sandbox.example")
	if err == nil || !strings.Contains(out, "530 5.7.0 authentication required") {
		t.Errorf("MAIL without AUTH on submission:\n%s", out)
	}
	out, err = swaks(t, sw, addr, "--tlsc", "--auth", "LOGIN", "--auth-user", "alice", "--auth-password", "s3cret",
		"--from", "alice@sandbox.example", "--to", "x@far.example")
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}

	// Plain text on the TLS port.
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Write([]byte("EHLO plain.example\r\n"))
		io.Copy(io.Discard, c)
		c.Close()
	}
	// A client that does not trust the certificate's name.
	if out, ok := sClient(t, addr, ca, false, "-servername", "one.example.org", "-verify_hostname", "other.example"); ok {
		t.Errorf("wrong name accepted:\n%s", out)
	}
	// A TLS 1.1 client.
	if out, ok := sClient(t, addr, ca, false, "-tls1_1"); ok {
		t.Errorf("TLS 1.1 accepted:\n%s", out)
	}
	// An expired certificate, swapped in while the server runs.
	tca := testca.New(t)
	now := time.Now()
	p := testca.WriteFile(t, filepath.Join(h.Dir, "control"), "servercert.pem.new",
		tca.Issue(t, []string{"mx.sandbox.example"}, now.Add(-48*time.Hour), now.Add(-24*time.Hour)))
	chownAll(t, h, p)
	if err := os.Rename(p, filepath.Join(h.Dir, "control", "servercert.pem")); err != nil {
		t.Fatal(err)
	}
	caNew := testca.WriteFile(t, t.TempDir(), "ca.pem", tca.PEM)
	out, ok = sClient(t, addr, caNew, false)
	if ok || !strings.Contains(out, "certificate has expired") {
		t.Errorf("expired certificate:\n%s", out)
	}
	// Still serving.
	out, ok = sClient(t, addr, ca, false, "-servername", "two.example.com")
	if !ok {
		t.Errorf("server gone:\n%s", out)
	}
	b, _ := os.ReadFile(logPath)
	log := string(b)
	mustContain(t, log,
		"tls handshake failed remote=127.0.0.1: not a TLS client hello",
		"tls handshake failed remote=127.0.0.1: tls: client offered only unsupported versions",
		`auth ok remote=127.0.0.1 user="alice" mech=LOGIN`)
	if n := strings.Count(log, "tls handshake failed remote=127.0.0.1: client aborted the handshake (it may not trust our certificate)"); n != 2 {
		t.Errorf("%d handshakes aborted for the certificate's name and expiry, want 2", n)
	}
	if strings.Contains(log, "panic") {
		t.Errorf("server log:\n%s", log)
	}
}

// TestListenerRefusesBadCertificates: a mismatched key, or implicit TLS without
// a certificate, stop qmail-smtpd at start-up with the file named.
func TestListenerRefusesBadCertificates(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	run := func(args ...string) string {
		cmd := exec.Command(filepath.Join(h.Bin, "qmail-smtpd"), append([]string{"-l", "127.0.0.1:" + freePort(t)}, args...)...)
		cmd.Env = h.Env()
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 111 {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	mustContain(t, run("-T"), "control/servercert.pem: no TLS certificate")
	ca := testca.New(t)
	a, b := ca.Valid(t, "a.example"), ca.Valid(t, "b.example")
	k := strings.Index(string(b), "-----BEGIN PRIVATE KEY")
	ka := strings.Index(string(a), "-----BEGIN PRIVATE KEY")
	chownAll(t, h, testca.WriteFile(t, filepath.Join(h.Dir, "control"), "servercert.pem", append(a[:ka:ka], b[k:]...)))
	mustContain(t, run(), "control/servercert.pem: the private key does not match the certificate")
}
