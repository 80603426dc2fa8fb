package smtpd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/testpeer"
)

// checkpassword is a checkpassword program in shell: alice's password is s3cret;
// the user "broken" gets a temporary failure.
const checkpassword = `#!/bin/sh
tr '\0' '\n' <&3 | {
	read -r user; read -r pass
	[ "$user" = broken ] && exit 111
	[ "$user" = alice ] && [ "$pass" = s3cret ] || exit 1
}
st=$?
[ $st -eq 0 ] && exec "$@"
exit $st
`

func writeCheckpassword(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "checkpassword")
	if err := os.WriteFile(p, []byte(checkpassword), 0755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuthDialog(t *testing.T) {
	cp := writeCheckpassword(t, t.TempDir())
	q := &memQueue{}
	cfg := testConfig(q)
	cfg.Auth = CheckPassword([]string{cp, "/bin/true"}, nil, time.Minute)
	cfg.AuthWithoutTLS = true // control/authwithouttls: this dialog is plain text
	// PLAIN with an initial response: "\0alice\0s3cret"; LOGIN: YWxpY2U= is alice.
	out := dialog(t, cfg, "EHLO c\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<u@far.example>\r\nRSET\r\n"+
		"AUTH PLAIN AGFsaWNlAHdyb25n\r\nAUTH LOGIN\r\n*\r\nAUTH CRAM-MD5\r\nAUTH PLAIN !!!\r\n"+
		"AUTH LOGIN YWxpY2U=\r\nczNjcmV0\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n"+
		"MAIL FROM:<alice@example.org>\r\nRCPT TO:<u@far.example>\r\nDATA\r\nrelayed\r\n.\r\n")
	mustContain(t, out, "250 AUTH LOGIN PLAIN\r\n",
		"553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts\r\n250 2.0.0 flushed\r\n",
		"535 5.7.8 authorization failed\r\n334 VXNlcm5hbWU6\r\n501 5.0.0 auth exchange cancelled\r\n504 5.5.4 auth type unimplemented\r\n501 5.5.2 malformed auth input\r\n",
		"334 UGFzc3dvcmQ6\r\n235 2.7.0 ok, go ahead\r\n503 5.5.1 you're already authenticated\r\n")
	if qs := q.all(); len(qs) != 1 || qs[0].rcpts[0] != "u@far.example" {
		t.Errorf("queued %+v", qs)
	}
	// temporary failure, and no AUTH offered without a checkpassword
	out = dialog(t, cfg, "AUTH PLAIN AGJyb2tlbgB4\r\n")
	mustContain(t, out, "454 temporary authentication failure (#4.7.0)")
	out = dialog(t, testConfig(q), "EHLO c\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n")
	if strings.Contains(out, "AUTH") || !strings.Contains(out, "502 5.5.1 unimplemented") {
		t.Errorf("AUTH without checkpassword:\n%s", out)
	}
}

func TestAuthPlugin(t *testing.T) {
	dir := t.TempDir()
	cp := writeCheckpassword(t, dir)
	writePlugin(t, dir, "authcheck", `[ "$SMTPAUTHUSER" = alice ] && echo "E535 5.7.1 $SMTPAUTHUSER may not send from $TCPREMOTEIP"`+"\n")
	q := &memQueue{}
	cfg := pluginConfig(t, q, dir, "[auth]\nplugins/authcheck\n")
	cfg.Auth = CheckPassword([]string{cp, "/bin/true"}, nil, time.Minute)
	cfg.AuthWithoutTLS = true
	out := dialog(t, cfg, "EHLO c\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<u@far.example>\r\n")
	mustContain(t, out, "535 5.7.1 alice may not send from 192.0.2.7\r\n", "553 5.7.1 sorry, that domain")
}

// TestAuthRealClients: swaks (LOGIN) and smtplib (PLAIN) authenticate after
// STARTTLS against qmail-smtpd run under tcpserver as
// "qmail-smtpd host checkpassword /bin/true" with a checkpassword shell script.
func TestAuthRealClients(t *testing.T) {
	sw := testpeer.Need(t, "swaks")
	py := testpeer.Need(t, "python3")
	tcpserver := testpeer.Need(t, "tcpserver")
	h := sandbox.New(t, sandbox.Options{})
	ca := installCerts(t, h)
	cp := writeCheckpassword(t, h.Dir)
	addr := startTCPServerCmd(t, h, tcpserver, []string{filepath.Join(h.Bin, "qmail-smtpd"), "mx.sandbox.example", cp, "/bin/true"})
	out, err := swaks(t, sw, addr, "--tls", "--tls-verify", "--tls-ca-path", ca, "--tls-sni", "mx.sandbox.example",
		"--auth", "LOGIN", "--auth-user", "alice", "--auth-password", "s3cret", "--from", "alice@sandbox.example", "--to", "x@far.example")
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	mustContain(t, out, "250 STARTTLS", "235 2.7.0 ok, go ahead")
	out = python(t, py, addr, `
import os, smtplib, ssl
s = smtplib.SMTP(os.environ["HOST"], int(os.environ["PORT"]))
s.ehlo()
print("before TLS auth offered:", s.has_extn("auth"))
s.starttls(context=ssl.create_default_context(cafile=os.environ["CA"]))
try:
    s.login("alice", "wrong")
except smtplib.SMTPAuthenticationError as e:
    print("refused", e.smtp_code)
try:
    s.sendmail("alice@sandbox.example", ["y@far.example"], "Subject: auth\r\n\r\nhi\r\n")
except smtplib.SMTPRecipientsRefused as e:
    print("relay refused", list(e.recipients.values())[0][0])
s.login("alice", "s3cret")
s.sendmail("alice@sandbox.example", ["y@far.example"], "Subject: auth\r\n\r\nhi\r\n")
s.quit()
`, "CA="+ca)
	mustContain(t, out, "before TLS auth offered: False", "refused 535", "relay refused 553")
	msgs := queuedMessages(t, h)
	if n := len(msgs); n != 2 {
		t.Fatalf("queued %d", n)
	}
	for _, m := range msgs {
		mustContain(t, m.data, "by mx.sandbox.example with ESMTPSA (TLSv1.3 TLS_", "authenticated as alice); ")
	}
}
