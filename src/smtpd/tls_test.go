package smtpd

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/certs"
	"github.com/notqmail/notqmail/src/certs/testca"
	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/sandbox"
)

// testStore is a certificate store with a default certificate for mx.example.org
// and an SNI one for two.example.com.
func testStore(t *testing.T) (*certs.Store, *testca.CA) {
	t.Helper()
	dir := t.TempDir()
	ca := testca.New(t)
	testca.WriteFile(t, dir, "servercert.pem", ca.Valid(t, "mx.example.org"))
	testca.WriteFile(t, dir, "tls/two.example.com.pem", ca.Valid(t, "two.example.com"))
	st, err := certs.Open(control.Open(dir))
	if err != nil {
		t.Fatal(err)
	}
	return st, ca
}

// acceptAlice is an Authenticator for alice/s3cret.
func acceptAlice(user, pass string) error {
	if user == "alice" && pass == "s3cret" {
		return nil
	}
	return ErrAuthFailed
}

// client is a line-level SMTP client for tests that look at every reply.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := c.c.Write([]byte(line)); err != nil {
		c.t.Fatal(err)
	}
}

// reply reads one whole (possibly multi-line) reply.
func (c *client) reply() string {
	c.t.Helper()
	var all strings.Builder
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading reply: %v (got %q)", err, all.String())
		}
		all.WriteString(l)
		if len(l) < 4 || l[3] != '-' {
			return all.String()
		}
	}
}

func (c *client) cmd(line, want string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	r := c.reply()
	if !strings.Contains(r, want) {
		c.t.Fatalf("%s: got %q, want %q", line, r, want)
	}
	return r
}

func (c *client) starttls(sni string, ca *testca.CA) *tls.ConnectionState {
	c.t.Helper()
	tc := tls.Client(c.c, &tls.Config{ServerName: sni, RootCAs: ca.Pool()})
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.c, c.br = tc, bufio.NewReader(tc)
	st := tc.ConnectionState()
	return &st
}

func TestAuthRefusedOnPlainText(t *testing.T) {
	q := &memQueue{}
	cfg := testConfig(q)
	cfg.Auth = acceptAlice
	var log sandbox.Log
	cfg.Log = &log
	out := dialog(t, cfg, "EHLO c\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\nAUTH LOGIN\r\n"+
		"MAIL FROM:<alice@example.org> AUTH=<>\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<u@far.example>\r\n")
	if strings.Contains(out, "AUTH LOGIN PLAIN") || strings.Contains(out, "STARTTLS") {
		t.Errorf("AUTH or STARTTLS offered on plain text without certificates:\n%s", out)
	}
	mustContain(t, out, "538 5.7.11 encryption required for requested authentication mechanism\r\n538 5.7.11",
		"555 5.5.4 unsupported parameter\r\n250 2.1.0 ok\r\n553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts")
	if strings.Contains(log.String(), "auth ok") {
		t.Errorf("log: %s", log.String())
	}
}

// TestStartTLSSession: STARTTLS with a real TLS client; commands pipelined after
// STARTTLS are dropped, not run inside the encrypted session; EHLO must be
// repeated and then offers AUTH; AUTH lets the client relay and shows in the
// Received line and the log.
func TestStartTLSSession(t *testing.T) {
	st, ca := testStore(t)
	q := &memQueue{}
	var log sandbox.Log
	addr := serve(t, func() *Config {
		cfg := testConfig(q)
		cfg.TLS = st.Config()
		cfg.Auth = acceptAlice
		cfg.Log = &log
		return cfg
	})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &client{t: t, c: nc, br: bufio.NewReader(nc)}
	c.reply()
	r := c.cmd("EHLO c", "STARTTLS\r\n")
	if strings.Contains(r, "AUTH") {
		t.Fatalf("AUTH offered before STARTTLS: %q", r)
	}
	c.cmd("STARTTLS extra", "501 5.5.4")
	c.cmd("MAIL FROM:<a@x.example>", "250")
	c.cmd("STARTTLS", "503 5.5.1 no STARTTLS during mail transaction")
	c.cmd("RSET", "250")
	// The injected command would be answered first if it ran after the handshake.
	c.send("STARTTLS\r\nMAIL FROM:<injected@x.example>\r\n")
	if r := c.reply(); !strings.HasPrefix(r, "220 2.0.0 ready to start TLS") {
		t.Fatalf("STARTTLS: %q", r)
	}
	state := c.starttls("mx.example.org", ca)
	if state.Version < tls.VersionTLS12 {
		t.Errorf("version %x", state.Version)
	}
	c.cmd("MAIL FROM:<a@x.example>", "250 ok") // HELO-style reply: EHLO was forgotten
	c.cmd("RSET", "250")
	r = c.cmd("EHLO c", "AUTH LOGIN PLAIN\r\n")
	if strings.Contains(r, "STARTTLS") {
		t.Errorf("STARTTLS offered inside TLS: %q", r)
	}
	c.cmd("STARTTLS", "503 5.5.1 TLS already active")
	c.cmd("AUTH PLAIN AGFsaWNlAHdyb25n", "535 5.7.8 authorization failed")
	c.cmd("MAIL FROM:<alice@example.org>", "250")
	c.cmd("RCPT TO:<u@far.example>", "553 5.7.1")
	c.cmd("RSET", "250")
	c.cmd("AUTH LOGIN", "334 VXNlcm5hbWU6")
	c.cmd("YWxpY2U=", "334 UGFzc3dvcmQ6")
	c.cmd("czNjcmV0", "235 2.7.0 ok, go ahead")
	c.cmd("MAIL FROM:<alice@example.org> AUTH=<>", "250")
	c.cmd("RCPT TO:<u@far.example>", "250")
	c.cmd("DATA", "354")
	c.cmd("Subject: t\r\n\r\nover TLS\r\n.", "250 2.0.0 ok")
	c.cmd("QUIT", "221")
	qs := q.all()
	if len(qs) != 1 || qs[0].rcpts[0] != "u@far.example" {
		t.Fatalf("queued %+v", qs)
	}
	mustContain(t, qs[0].data, "by mx.example.org with ESMTPSA (TLSv1.3 TLS_", ", authenticated as alice); ")
	waitFor(t, func() bool { return strings.Contains(log.String(), "session remote=") })
	if strings.Contains(log.String(), "injected") {
		t.Errorf("injected command ran: %s", log.String())
	}
	mustContain(t, log.String(), "dropped 32 bytes sent after STARTTLS", "tls remote=192.0.2.7 version=TLSv1.3",
		`auth failed remote=192.0.2.7 user="alice" mech=PLAIN failures=1`, `auth ok remote=192.0.2.7 user="alice" mech=LOGIN`,
		`auth="alice"`, "tls=TLSv1.3")
}

// TestImplicitTLSSNI: a session that starts with TLS, choosing the certificate by
// the SNI name; submission mode wants AUTH before MAIL.
func TestImplicitTLSSNI(t *testing.T) {
	st, ca := testStore(t)
	q := &memQueue{}
	addr := serve(t, func() *Config {
		cfg := testConfig(q)
		cfg.TLS, cfg.ImplicitTLS, cfg.Submission = st.Config(), true, true
		cfg.Auth = acceptAlice
		return cfg
	})
	for _, sni := range []string{"two.example.com", "mx.example.org"} {
		tc, err := tls.Dial("tcp", addr, &tls.Config{ServerName: sni, RootCAs: ca.Pool()})
		if err != nil {
			t.Fatalf("%s: %v", sni, err)
		}
		if cn := tc.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != sni {
			t.Errorf("SNI %s: certificate %s", sni, cn)
		}
		t.Cleanup(func() { tc.Close() }) // a failed test must not leave the server waiting
		c := &client{t: t, c: tc, br: bufio.NewReader(tc)}
		c.reply()
		r := c.cmd("EHLO c", "AUTH LOGIN PLAIN\r\n")
		if strings.Contains(r, "STARTTLS") {
			t.Errorf("STARTTLS on implicit TLS: %q", r)
		}
		c.cmd("MAIL FROM:<a@example.org>", "530 5.7.0 authentication required")
		c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldA==", "235")
		c.cmd("MAIL FROM:<alice@example.org>", "250")
		c.cmd("QUIT", "221")
		tc.Close()
	}
}

// TestHandshakeFailures: plain text on a TLS port and a client that gives up on
// our certificate end the session with a log line saying why.
func TestHandshakeFailures(t *testing.T) {
	st, _ := testStore(t)
	var log sandbox.Log
	addr := serve(t, func() *Config {
		cfg := testConfig(&memQueue{})
		cfg.TLS, cfg.ImplicitTLS = st.Config(), true
		cfg.Log = &log
		return cfg
	})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte("EHLO plain.text.client\r\n"))
	buf := make([]byte, 100)
	nc.Read(buf) // the server's alert, or nothing: either way it hangs up
	nc.Close()

	// Verifying against an empty pool fails: the client aborts with an alert.
	_, err = tls.Dial("tcp", addr, &tls.Config{ServerName: "mx.example.org", RootCAs: testca.New(t).Pool()})
	if err == nil {
		t.Fatal("untrusted certificate accepted")
	}
	// A TLS 1.1 client is refused.
	_, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
	// The server still works.
	tc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, c: tc, br: bufio.NewReader(tc)}
	c.reply()
	c.cmd("QUIT", "221")
	tc.Close()
	waitFor(t, func() bool { return strings.Count(log.String(), "session remote=") >= 4 })
	mustContain(t, log.String(),
		"tls handshake failed remote=192.0.2.7: not a TLS client hello (plain text or another protocol on a TLS port?)",
		"tls handshake failed remote=192.0.2.7: client sent alert: tls: bad certificate",
		"tls handshake failed remote=192.0.2.7: tls: client offered only unsupported versions: [302 301]",
		`end="tls handshake failed"`)
}

// waitFor polls a condition that a server goroutine will make true, with a bound
// that only guards against a hang.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAuthLimits(t *testing.T) {
	now := testNow
	lim := &AuthLimiter{Max: 4, Window: time.Hour, Now: func() time.Time { return now }}
	q := &memQueue{}
	mk := func(ip string) *Config {
		cfg := testConfig(q)
		cfg.Auth, cfg.AuthWithoutTLS, cfg.AuthLimit, cfg.RemoteIP = acceptAlice, true, lim, ip
		return cfg
	}
	wrong := "AUTH PLAIN AGFsaWNlAHdyb25n\r\n"
	ok := "EHLO c\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n"
	// A session is closed after three failures.
	out := dialog(t, mk("192.0.2.9"), "EHLO c\r\n"+wrong+wrong+wrong+"NOOP\r\n")
	mustContain(t, out, "535 5.7.8 authorization failed\r\n535 5.7.8 authorization failed\r\n421 4.7.0 too many failed authentications, closing connection\r\n")
	if strings.Contains(out, "250 2.0.0 ok") {
		t.Errorf("session went on:\n%s", out)
	}
	// The fourth failure from the address uses up its allowance: even the right
	// password is then refused without being checked.
	out = dialog(t, mk("192.0.2.9"), "EHLO c\r\n"+wrong+"AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n")
	mustContain(t, out, "535 5.7.8 authorization failed\r\n454 4.7.0 too many failed authentications from your address, try again later\r\n")
	// Other addresses are not affected; IPv6 counts per /64.
	mustContain(t, dialog(t, mk("192.0.2.10"), ok), "235")
	for i := 0; i < 4; i++ {
		lim.Fail("2001:db8:1:2::" + string(rune('a'+i)))
	}
	mustContain(t, dialog(t, mk("2001:db8:1:2::ffff"), ok), "454 4.7.0")
	mustContain(t, dialog(t, mk("2001:db8:1:3::1"), ok), "235")
	// Credentials longer than checkpassword reads are a counted failure.
	long := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00" + strings.Repeat("p", 600)))
	mustContain(t, dialog(t, mk("192.0.2.11"), "EHLO c\r\nAUTH PLAIN "+long+"\r\n"), "535 5.7.8")
	// After the window the address may try again.
	now = now.Add(time.Hour)
	mustContain(t, dialog(t, mk("192.0.2.9"), ok), "235")
}

func TestAuthLimiterBoundedMemory(t *testing.T) {
	lim := NewAuthLimiter()
	for i := 0; i < maxAuthFailAddrs*2; i++ {
		lim.Fail(net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)).String())
	}
	if n := len(lim.fails); n > maxAuthFailAddrs {
		t.Fatalf("%d addresses kept", n)
	}
}

// installCerts gives a sandbox a test CA's certificates: servercert.pem for
// mx.sandbox.example and SNI files for one.example.org and two.example.com. It
// returns the path of the CA certificate, for clients.
func installCerts(t *testing.T, h *sandbox.Home) string {
	t.Helper()
	ca := testca.New(t)
	ctl := filepath.Join(h.Dir, "control")
	for name, cn := range map[string]string{
		"servercert.pem":          "mx.sandbox.example",
		"tls/one.example.org.pem": "one.example.org",
		"tls/two.example.com.pem": "two.example.com",
	} {
		chownAll(t, h, testca.WriteFile(t, ctl, name, ca.Valid(t, cn, "127.0.0.1")))
	}
	return testca.WriteFile(t, t.TempDir(), "ca.pem", ca.PEM)
}

// chownAll gives a file and its directories under the sandbox to the sandbox user.
func chownAll(t *testing.T, h *sandbox.Home, p string) {
	t.Helper()
	for ; strings.HasPrefix(p, h.Dir+"/"); p = filepath.Dir(p) {
		if err := os.Chown(p, h.UID, h.GID); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTLSIdleClientTimesOut: timeoutsmtpd applies inside TLS, and to a client that
// connects to the TLS port and never starts the handshake.
func TestTLSIdleClientTimesOut(t *testing.T) {
	st, ca := testStore(t)
	var log sandbox.Log
	addr := serve(t, func() *Config {
		cfg := testConfig(&memQueue{})
		cfg.TLS, cfg.ImplicitTLS, cfg.Timeout, cfg.Log = st.Config(), true, 200*time.Millisecond, &log
		return cfg
	})
	tc, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "mx.example.org", RootCAs: ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	c := &client{t: t, c: tc, br: bufio.NewReader(tc)}
	c.reply()
	c.cmd("EHLO c", "250")
	if r := c.reply(); r != "451 4.4.2 timeout\r\n" {
		t.Errorf("idle TLS client got %q", r)
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	io.Copy(io.Discard, nc) // returns when the server hangs up
	waitFor(t, func() bool { return strings.Count(log.String(), "session remote=") >= 2 })
	mustContain(t, log.String(), `end="timeout"`, "tls handshake failed remote=192.0.2.7: timeout: the client did not finish the handshake within timeoutsmtpd")
}

func TestLoadAuthAndTLSSettings(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "me"), []byte("mx.example.org\n"), 0o644)
	env := map[string]string{}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, done, err := Load(control.Open(dir), lookup)
	if err != nil {
		t.Fatal(err)
	}
	done()
	if cfg.AuthWithoutTLS || cfg.ImplicitTLS || cfg.Submission {
		t.Fatalf("defaults: %+v", cfg)
	}
	os.WriteFile(filepath.Join(dir, "authwithouttls"), []byte("1\n"), 0o644)
	env["SMTPS"], env["SUBMISSION"] = "1", "1"
	cfg, done, err = Load(control.Open(dir), lookup)
	if err != nil {
		t.Fatal(err)
	}
	done()
	if !cfg.AuthWithoutTLS || !cfg.ImplicitTLS || !cfg.Submission {
		t.Fatalf("set: %+v", cfg)
	}
}
