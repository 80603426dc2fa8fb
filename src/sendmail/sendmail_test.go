package sendmail

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRealWorldInvocations(t *testing.T) {
	for _, c := range []struct {
		who  string
		name string
		args []string
		mode Mode
		inj  string // qmail-inject's arguments, space-joined
	}{
		{"Debian cron", "sendmail", []string{"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"}, Inject, "-a -- root"},
		{"cronie", "sendmail", []string{"-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "root"}, Inject, "-H -f root --"},
		{"PHP mail()", "sendmail", []string{"-t", "-i"}, Inject, "-H --"},
		{"PHP with -f", "sendmail", []string{"-t", "-i", "-fwww@example.org"}, Inject, "-H -f www@example.org --"},
		{"git send-email", "sendmail", []string{"-i", "-f", "dev@example.org", "a@example.com", "b@example.com"}, Inject, "-a -f dev@example.org -- a@example.com b@example.com"},
		{"mutt", "sendmail", []string{"-oem", "-oi", "--", "a@example.com"}, Inject, "-a -- a@example.com"},
		{"mutt with DSN", "sendmail", []string{"-oem", "-oi", "-N", "failure,delay", "-R", "hdrs", "-V", "id1", "--", "a@example.com"}, Inject, "-a -- a@example.com"},
		{"logwatch", "sendmail", []string{"-t"}, Inject, "-H --"},
		{"bsd-mailx", "sendmail", []string{"-i", "--", "a@example.com"}, Inject, "-a -- a@example.com"},
		{"s-nail", "sendmail", []string{"-oi", "-em", "-r", "me@example.org", "a@example.com"}, Inject, "-a -f me@example.org -- a@example.com"},
		{"unattended-upgrades", "sendmail", []string{"-oi", "-t"}, Inject, "-H --"},
		{"verbose background", "sendmail", []string{"-v", "-odb", "-om", "-x", "-L", "tag", "-Am", "-X", "/dev/null", "-h", "17", "a@b.c"}, Inject, "-a -- a@b.c"},
		{"Sony NEWS-OS", "sendmail", []string{"-Efoo", "-J", "a@b.c"}, Inject, "-a -- a@b.c"},
		{"-bm", "sendmail", []string{"-bm", "a@b.c"}, Inject, "-a -- a@b.c"},
		{"clustered", "sendmail", []string{"-tif", "x@y.z"}, Inject, "-H -f x@y.z --"},
		{"-bs", "sendmail", []string{"-bs"}, SMTP, ""},
		{"-bp", "sendmail", []string{"-bp"}, ListQueue, ""},
		{"mailq", "mailq", nil, ListQueue, ""},
		{"options end at a recipient", "sendmail", []string{"a@b.c", "-f", "x"}, Inject, "-a -- a@b.c -f x"},
	} {
		inv, err := Parse(c.name, c.args)
		if err != nil {
			t.Errorf("%s: %v", c.who, err)
			continue
		}
		if inv.Mode != c.mode {
			t.Errorf("%s: mode %v, want %v", c.who, inv.Mode, c.mode)
		}
		if c.mode == Inject {
			if got := strings.Join(inv.InjectArgs(), " "); got != c.inj {
				t.Errorf("%s: qmail-inject %q, want %q", c.who, got, c.inj)
			}
		}
	}
}

func TestRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		msg  string
	}{
		{"sendmail", []string{"-q"}, "runs the queue"},
		{"sendmail", []string{"-q1h"}, "runs the queue"},
		{"sendmail", []string{"-bd"}, "-bd is not supported"},
		{"sendmail", []string{"-bt"}, "-bt is not supported"},
		{"sendmail", []string{"-bv", "a@b.c"}, "-bv is not supported"},
		{"sendmail", []string{"-bi"}, "fastforward"},
		{"newaliases", nil, "fastforward"},
		{"sendmail", []string{"-C", "/etc/mail/sendmail.cf", "a@b.c"}, "sendmail.cf"},
		{"sendmail", []string{"-d0.1", "a@b.c"}, "debugging"},
		{"sendmail", []string{"-Z", "a@b.c"}, "unknown option -Z"},
		{"sendmail", []string{"--help"}, "unknown option --"},
		{"sendmail", []string{"-f"}, "needs an argument"},
		{"sendmail", []string{"-i"}, "no recipients"},
	} {
		_, err := Parse(c.name, c.args)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s %q: got %v, want %q", c.name, c.args, err, c.msg)
		}
	}
}

func TestInjectEnv(t *testing.T) {
	str := func(p *string) string {
		if p == nil {
			return "<unset>"
		}
		return *p
	}
	inv, _ := Parse("sendmail", []string{"-f", "list-owner@lists.example", "-F", "The List", "a@b.c"})
	env := inv.InjectEnv()
	for k, want := range map[string]string{
		"QMAILUSER": "list-owner", "QMAILHOST": "lists.example", "MAILNAME": "The List",
		"QMAILNAME": "<unset>", "NAME": "<unset>", "MAILHOST": "<unset>",
	} {
		if v, ok := env[k]; !ok || str(v) != want {
			t.Errorf("%s = %s, want %s", k, str(v), want)
		}
	}
	inv, _ = Parse("sendmail", []string{"-f", "root", "a@b.c"})
	env = inv.InjectEnv()
	if str(env["QMAILUSER"]) != "root" || str(env["QMAILHOST"]) != "<unset>" {
		t.Errorf("-f root: %s %s", str(env["QMAILUSER"]), str(env["QMAILHOST"]))
	}
	inv, _ = Parse("sendmail", []string{"a@b.c"})
	if len(inv.InjectEnv()) != 0 {
		t.Errorf("no -f/-F should change nothing: %v", inv.InjectEnv())
	}
}

// sandboxHome makes a QMAILHOME with control/me and a QMAILQUEUE that keeps what it
// is given.
func sandboxHome(t *testing.T) (homeDir, out string) {
	t.Helper()
	homeDir, out = t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(homeDir, "control"), 0755)
	os.MkdirAll(filepath.Join(homeDir, "bin"), 0755)
	os.WriteFile(filepath.Join(homeDir, "control", "me"), []byte("example.com\n"), 0644)
	q := filepath.Join(homeDir, "fake-queue")
	os.WriteFile(q, []byte("#!/bin/sh\ncat > "+out+"/msg\ncat <&1 > "+out+"/env\n"), 0755)
	t.Setenv("QMAILHOME", homeDir)
	t.Setenv("QMAILQUEUE", q)
	return homeDir, out
}

func TestMainInjects(t *testing.T) {
	_, out := sandboxHome(t)
	env := func(n string) (string, bool) {
		v, ok := map[string]string{"USER": "www-data", "NAME": "Web Server"}[n]
		return v, ok
	}
	var stderr bytes.Buffer
	in := "To: alice@example.net\nBcc: hidden@example.net\nSubject: order\n\nthanks\n"
	code := Main("sendmail", []string{"-t", "-i", "-f", "shop@example.org", "extra@example.net"}, env, strings.NewReader(in), nil, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	msg, _ := os.ReadFile(filepath.Join(out, "msg"))
	envl, _ := os.ReadFile(filepath.Join(out, "env"))
	if !strings.Contains(string(msg), "\nFrom: shop@example.org\n") || strings.Contains(string(msg), "Bcc") {
		t.Errorf("message:\n%s", msg)
	}
	want := "Fshop@example.org\x00Textra@example.net\x00Talice@example.net\x00Thidden@example.net\x00\x00"
	if string(envl) != want {
		t.Errorf("envelope %q, want %q", envl, want)
	}
}

func TestMainChildren(t *testing.T) {
	homeDir, _ := sandboxHome(t)
	var stdout, stderr bytes.Buffer
	// qmail-smtpd absent: a clear error, temporary.
	code := Main("sendmail", []string{"-bs"}, nil, strings.NewReader(""), &stdout, &stderr)
	if code != 111 || !strings.Contains(stderr.String(), "unable to run qmail-smtpd") {
		t.Errorf("-bs without qmail-smtpd: %d %q", code, stderr.String())
	}
	// -bs passes the local-client environment; -bp runs qmail-qread.
	os.WriteFile(filepath.Join(homeDir, "bin", "qmail-smtpd"), []byte("#!/bin/sh\necho \"$PROTO $TCPREMOTEIP $TCPREMOTEINFO [$RELAYCLIENT]\"\nexit 3\n"), 0755)
	os.WriteFile(filepath.Join(homeDir, "bin", "qmail-qread"), []byte("#!/bin/sh\necho queue listing\n"), 0755)
	stdout.Reset()
	t.Setenv("PROTO", "")
	os.Unsetenv("PROTO")
	code = Main("sendmail", []string{"-bs"}, nil, strings.NewReader(""), &stdout, &stderr)
	if code != 3 || stdout.String() != "TCP 127.0.0.1 sendmail-bs []\n" {
		t.Errorf("-bs: %d %q", code, stdout.String())
	}
	for _, c := range []struct {
		name string
		args []string
	}{{"sendmail", []string{"-bp"}}, {"mailq", nil}} {
		stdout.Reset()
		if code := Main(c.name, c.args, nil, nil, &stdout, &stderr); code != 0 || stdout.String() != "queue listing\n" {
			t.Errorf("%s %v: %d %q", c.name, c.args, code, stdout.String())
		}
	}
	stderr.Reset()
	if code := Main("sendmail", []string{"-q"}, nil, nil, &stdout, &stderr); code != 100 || !strings.HasPrefix(stderr.String(), "sendmail: fatal: ") {
		t.Errorf("-q: %d %q", code, stderr.String())
	}
}

func TestDateMail(t *testing.T) {
	_, out := sandboxHome(t)
	var stderr bytes.Buffer
	code := DateMail([]string{"a@b.c"}, func(string) (string, bool) { return "", false }, strings.NewReader("Subject: s\n\nx\n"), nil, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	msg, _ := os.ReadFile(filepath.Join(out, "msg"))
	// The local Date is kept, so qmail-inject adds none of its own.
	if n := strings.Count(string(msg), "Date: "); n != 1 || !strings.Contains(string(msg), "\nDate: ") && !strings.HasPrefix(string(msg), "Date: ") {
		t.Errorf("message %q", msg)
	}
	if strings.Contains(string(msg), "-0000\n") {
		t.Errorf("qmail-inject's UTC Date used instead of the local one: %q", msg)
	}
}
