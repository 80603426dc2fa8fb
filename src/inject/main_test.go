package inject

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeQueue writes a QMAILQUEUE program that keeps the message and envelope it gets,
// then exits with code (after writing custom to fd 6, if any).
func fakeQueue(t *testing.T, code int, custom string) (home, out string) {
	t.Helper()
	home = t.TempDir()
	out = t.TempDir()
	os.MkdirAll(filepath.Join(home, "control"), 0755)
	os.WriteFile(filepath.Join(home, "control", "me"), []byte("example.com\n"), 0644)
	script := "#!/bin/sh\ncat > " + out + "/msg\ncat <&1 > " + out + "/env\n"
	if custom != "" {
		script += "printf '%s' '" + custom + "' >&6\n"
	}
	script += "exit " + string(rune('0'+code/10)) + string(rune('0'+code%10)) + "\n"
	q := filepath.Join(home, "fake-queue")
	if err := os.WriteFile(q, []byte(script), 0755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("QMAILHOME", home)
	t.Setenv("QMAILQUEUE", q)
	return home, out
}

func TestMainQueuesThroughQMAILQUEUE(t *testing.T) {
	_, out := fakeQueue(t, 0, "")
	var stderr bytes.Buffer
	env := func(n string) (string, bool) {
		if n == "USER" {
			return "joe", true
		}
		return "", false
	}
	code := Main([]string{"-f", "bounce@example.org"}, env, strings.NewReader("To: bob\n\nhello\n"), nil, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	msg, _ := os.ReadFile(filepath.Join(out, "msg"))
	envl, _ := os.ReadFile(filepath.Join(out, "env"))
	if !strings.HasSuffix(string(msg), "From: joe@example.com\nTo: bob@example.com\n\nhello\n") {
		t.Errorf("message %q", msg)
	}
	if string(envl) != "Fbounce@example.org\x00Tbob@example.com\x00\x00" {
		t.Errorf("envelope %q", envl)
	}
}

func TestMainReportsQueueRefusal(t *testing.T) {
	for _, c := range []struct {
		code   int
		custom string
		exit   int
		msg    string
	}{
		{31, "", 100, "qmail-inject: fatal: mail server permanently rejected message (#5.3.0)\n"},
		{53, "", 111, "qmail-inject: fatal: qq write error or disk full (#4.3.0)\n"},
		{82, "Dspam is not welcome here", 100, "qmail-inject: fatal: spam is not welcome here\n"},
		{82, "Ztry again later", 111, "qmail-inject: fatal: try again later\n"},
	} {
		fakeQueue(t, c.code, c.custom)
		var stderr bytes.Buffer
		got := Main(nil, func(string) (string, bool) { return "", false }, strings.NewReader("To: a@b.c\n\n"), nil, &stderr)
		if got != c.exit || stderr.String() != c.msg {
			t.Errorf("qmail-queue exit %d: got %d %q, want %d %q", c.code, got, stderr.String(), c.exit, c.msg)
		}
	}
}

func TestMainMissingQueueProgram(t *testing.T) {
	home, _ := fakeQueue(t, 0, "")
	t.Setenv("QMAILQUEUE", filepath.Join(home, "does-not-exist"))
	var stderr bytes.Buffer
	got := Main(nil, func(string) (string, bool) { return "", false }, strings.NewReader("To: a@b.c\n\n"), nil, &stderr)
	if got != 111 || !strings.HasPrefix(stderr.String(), "qmail-inject: fatal: ") {
		t.Errorf("got %d %q", got, stderr.String())
	}
}
