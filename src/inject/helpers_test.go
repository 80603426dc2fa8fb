package inject

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestLocalDateField(t *testing.T) {
	zone := time.FixedZone("X", -(4*3600 + 30*60))
	if got := LocalDateField(time.Date(2026, 3, 7, 9, 8, 7, 0, zone)); got != "Date: 7 Mar 2026 09:08:07 -0430\n" {
		t.Errorf("got %q", got)
	}
	if got := LocalDateField(time.Date(2026, 12, 25, 23, 0, 0, 0, time.UTC)); got != "Date: 25 Dec 2026 23:00:00 +0000\n" {
		t.Errorf("got %q", got)
	}
}

func TestPredate(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	var stderr bytes.Buffer
	code := Predate([]string{"sh", "-c", "cat > " + out + "; exit 7"}, strings.NewReader("Subject: x\n\nbody\n"), nil, &stderr)
	if code != 7 {
		t.Fatalf("exit %d, want the child's 7 (%s)", code, stderr.String())
	}
	got, _ := os.ReadFile(out)
	if !regexp.MustCompile(`^Date: \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [-+]\d{4}\nSubject: x\n\nbody\n$`).Match(got) {
		t.Errorf("child got %q", got)
	}
	if code := Predate(nil, nil, nil, &stderr); code != 100 || !strings.Contains(stderr.String(), "usage") {
		t.Errorf("no child: %d %q", code, stderr.String())
	}
	stderr.Reset()
	if code := Predate([]string{"/nonexistent/prog"}, strings.NewReader(""), nil, &stderr); code != 111 || !strings.Contains(stderr.String(), "unable to run") {
		t.Errorf("missing child: %d %q", code, stderr.String())
	}
	stderr.Reset()
	if code := Predate([]string{"sh", "-c", "kill -9 $$"}, strings.NewReader(""), nil, &stderr); code != 111 || !strings.Contains(stderr.String(), "crashed") {
		t.Errorf("crashing child: %d %q", code, stderr.String())
	}
}

func TestMailSubj(t *testing.T) {
	_, out := fakeQueue(t, 0, "")
	var stderr bytes.Buffer
	env := func(n string) (string, bool) {
		if n == "USER" {
			return "joe", true
		}
		return "", false
	}
	code := MailSubj([]string{"disk full\nBcc: evil@x.y", "a@b.c", "d"}, env, strings.NewReader("df says so\n"), nil, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	msg, _ := os.ReadFile(filepath.Join(out, "msg"))
	envl, _ := os.ReadFile(filepath.Join(out, "env"))
	if !strings.HasSuffix(string(msg), "From: joe@example.com\nSubject: disk full Bcc: evil@x.y\nTo: a@b.c, d@example.com\n\ndf says so\n") {
		t.Errorf("message %q", msg)
	}
	if string(envl) != "Fjoe@example.com\x00Td@example.com\x00Ta@b.c\x00\x00" {
		t.Errorf("envelope %q", envl)
	}
	if code := MailSubj([]string{"only subject"}, env, nil, nil, &stderr); code != 100 {
		t.Errorf("usage: exit %d", code)
	}
}
