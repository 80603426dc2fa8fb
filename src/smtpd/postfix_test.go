package smtpd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/testpeer"
)

// startPostfix runs a private Postfix instance (its own config, queue and data
// directories) that listens on a loopback port and relays everything to relay.
func startPostfix(t *testing.T, relay string) string {
	t.Helper()
	return startPostfixWith(t, relay, "", nil)
}

// startPostfixWith is startPostfix with extra main.cf lines; files are written
// into the instance's directory first (readable by Postfix's processes), and
// extra may name them as {{dir}}.
func startPostfixWith(t *testing.T, relay, extra string, files map[string][]byte) string {
	t.Helper()
	postfix := testpeer.Need(t, "postfix")
	if os.Geteuid() != 0 {
		t.Skip("starting a Postfix instance needs root")
	}
	dir, err := os.MkdirTemp("", "notqmail-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0755)
	conf, queue, data := filepath.Join(dir, "conf"), filepath.Join(dir, "queue"), filepath.Join(dir, "data")
	for _, d := range []string{conf, queue, data} {
		if err := os.Mkdir(d, 0755); err != nil {
			t.Fatal(err)
		}
	}
	exec.Command("chown", "postfix", data).Run()
	port := freePort(t)
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %s
data_directory = %s
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = pfx.test
myorigin = pfx.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
relayhost = [%s]:%s
mynetworks = 127.0.0.0/8
maillog_file_prefixes = %s
maillog_file = %s/maillog
alias_maps =
alias_database =
local_recipient_maps =
smtp_tls_security_level = none
smtpd_tls_security_level = none
`, queue, data, strings.Split(relay, ":")[0], strings.Split(relay, ":")[1], dir, dir) + strings.ReplaceAll(extra, "{{dir}}", dir)
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0644); err != nil {
			t.Fatal(err)
		}
	}
	masterCF := "127.0.0.1:" + port + " inet n - n - - smtpd\n" + `cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
tlsmgr unix - - n 1000? 1 tlsmgr
`
	os.WriteFile(filepath.Join(conf, "main.cf"), []byte(mainCF), 0644)
	os.WriteFile(filepath.Join(conf, "master.cf"), []byte(masterCF), 0644)
	run := func(args ...string) {
		out, err := exec.Command(postfix, append([]string{"-c", conf}, args...)...).CombinedOutput()
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "maillog"))
			t.Fatalf("postfix %v: %v\n%s\n%s", args, err, out, log)
		}
	}
	run("start")
	t.Cleanup(func() {
		exec.Command(postfix, "-c", conf, "stop").Run()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "maillog"))
			t.Logf("postfix log:\n%s", log)
		}
		os.RemoveAll(dir)
	})
	addr := "127.0.0.1:" + port
	waitListening(t, addr, nil)
	return addr
}

// TestPostfixRelaysToUs: Postfix relays a message to qmail-smtpd's built-in
// listener, and the sandbox's qmail-send delivers it to alice's Maildir.
func TestPostfixRelaysToUs(t *testing.T) {
	py := testpeer.Need(t, "python3")
	h := sandbox.New(t, sandbox.Options{})
	ours := startListener(t, h, "-H", "mx.sandbox.example")

	mta := h.Command("qmail-start", "./Maildir/")
	mta.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var mtaLog strings.Builder
	mta.Stdout, mta.Stderr = &mtaLog, &mtaLog
	if err := mta.Start(); err != nil {
		t.Fatal(err)
	}
	mtaDone := make(chan struct{})
	go func() { mta.Wait(); close(mtaDone) }()
	t.Cleanup(func() {
		mta.Process.Signal(syscall.SIGTERM)
		<-mtaDone
		syscall.Kill(-mta.Process.Pid, syscall.SIGKILL)
	})

	pfx := startPostfix(t, ours)
	python(t, py, pfx, `
import os, smtplib
s = smtplib.SMTP(os.environ["HOST"], int(os.environ["PORT"]))
s.sendmail("sender@pfx.test", ["alice@sandbox.example"],
    "From: sender@pfx.test\r\nTo: alice@sandbox.example\r\nSubject: via postfix\r\n\r\nrelayed by Postfix\r\n.dot line\r\n")
s.quit()
`)
	msgs := h.WaitMessages(t, "alice", 1)
	m := string(msgs[0].Data)
	mustContain(t, m, "Subject: via postfix\n", "\nrelayed by Postfix\n.dot line\n",
		"Received: from unknown (HELO pfx.test) (127.0.0.1)\n  by mx.sandbox.example with SMTP; ",
		"Delivered-To: alice@sandbox.example\n", "Return-Path: <sender@pfx.test>\n")
}

// TestPostfixSASLSubmission: Postfix, as a client with SASL (Cyrus, PLAIN or
// LOGIN) and TLS verified against the test CA, relays a message through
// qmail-smtpd's submission listener (-S), authenticating through qmail-chkpw; the
// message is queued for its remote recipient with the user in the Received line.
func TestPostfixSASLSubmission(t *testing.T) {
	py := testpeer.Need(t, "python3")
	h := sandbox.New(t, sandbox.Options{})
	ca := installCerts(t, h)
	addUser(t, h, "alice", "s3cret")
	ours := startListener(t, h, "-S", "-H", "mx.sandbox.example", "mx.sandbox.example", filepath.Join(h.Bin, "qmail-chkpw"), "/bin/true")
	caPEM, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pfx := startPostfixWith(t, ours, fmt.Sprintf(`
smtp_tls_security_level = secure
smtp_tls_secure_cert_match = nexthop
smtp_tls_CAfile = {{dir}}/ca.pem
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = inline:{ [127.0.0.1]:%s=alice:s3cret }
smtp_sasl_security_options = noanonymous
smtp_sasl_tls_security_options = noanonymous
`, strings.Split(ours, ":")[1]), map[string][]byte{"ca.pem": caPEM})
	python(t, py, pfx, `
import os, smtplib
s = smtplib.SMTP(os.environ["HOST"], int(os.environ["PORT"]))
s.sendmail("alice@pfx.test", ["bob@far.example"],
    "From: alice@pfx.test\r\nTo: bob@far.example\r\nSubject: via postfix sasl\r\n\r\nsubmitted\r\n")
s.quit()
`)
	var msgs []queued
	waitFor(t, func() bool { msgs = queuedMessages(t, h); return len(msgs) > 0 })
	if len(msgs) != 1 || msgs[0].rcpts[0] != "bob@far.example" || msgs[0].from != "alice@pfx.test" {
		t.Fatalf("queued %+v", msgs)
	}
	mustContain(t, msgs[0].data, "Subject: via postfix sasl\n", "(HELO pfx.test) (127.0.0.1)\n  by mx.sandbox.example with ESMTPSA (TLSv1.3 ", "authenticated as alice); ")
}
