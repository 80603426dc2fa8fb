package control

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func dir(t *testing.T, files map[string]string) Dir {
	t.Helper()
	d := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0644); err != nil {
			t.Fatal(err)
		}
	}
	return Open(d)
}

func TestLineTrimsTrailingWhiteSpace(t *testing.T) {
	d := dir(t, map[string]string{"me": "mail.example.org \t\r\nsecond line\n"})
	v, ok, err := d.Line("me")
	if err != nil || !ok || v != "mail.example.org" {
		t.Fatalf("Line(me) = %q, %v, %v", v, ok, err)
	}
}

func TestLineMissing(t *testing.T) {
	d := dir(t, nil)
	v, ok, err := d.Line("me")
	if err != nil || ok || v != "" {
		t.Fatalf("Line(missing) = %q, %v, %v", v, ok, err)
	}
}

func TestLineOrMe(t *testing.T) {
	d := dir(t, map[string]string{"me": "a.example\n", "helohost": "h.example\n", "idhost": "\n"})
	for name, want := range map[string]string{"helohost": "h.example", "bouncehost": "a.example", "idhost": "a.example"} {
		v, err := d.LineOrMe(name, "fallback")
		if err != nil || v != want {
			t.Errorf("LineOrMe(%s) = %q, %v; want %q", name, v, err, want)
		}
	}
	empty := dir(t, nil)
	if v, err := empty.LineOrMe("envnoathost", "envnoathost"); err != nil || v != "envnoathost" {
		t.Errorf("LineOrMe without me = %q, %v", v, err)
	}
}

func TestInt(t *testing.T) {
	d := dir(t, map[string]string{"databytes": "1048576  \n", "timeoutsmtpd": "12x\n", "queuelifetime": "-5\n", "concurrencylocal": "+3\n"})
	if n, err := d.Int("databytes", 0); err != nil || n != 1048576 {
		t.Errorf("Int(databytes) = %d, %v", n, err)
	}
	if n, err := d.Int("timeoutremote", 1200); err != nil || n != 1200 {
		t.Errorf("Int(missing) = %d, %v", n, err)
	}
	for _, name := range []string{"timeoutsmtpd", "queuelifetime", "concurrencylocal"} {
		_, err := d.Int(name, 1)
		var ce *Error
		if !errors.As(err, &ce) || ce.Line != 1 || !strings.HasSuffix(ce.File, name) {
			t.Fatalf("Int(%s) error = %v, want a file:line error", name, err)
		}
		if !strings.Contains(err.Error(), name+":1:") {
			t.Errorf("error %q does not name file and line", err)
		}
	}
}

func TestLinesCommentsBlankAndNumbers(t *testing.T) {
	d := dir(t, map[string]string{"rcpthosts": "# local domains\nexample.org  \n\n   \n.example.net\n#x\nlast.example"})
	ls, err := d.Lines("rcpthosts")
	if err != nil {
		t.Fatal(err)
	}
	want := []Line{{"example.org", 2}, {".example.net", 5}, {"last.example", 7}}
	if len(ls) != len(want) {
		t.Fatalf("Lines = %v, want %v", ls, want)
	}
	for i := range want {
		if ls[i] != want[i] {
			t.Errorf("line %d = %v, want %v", i, ls[i], want[i])
		}
	}
}

func TestNULIsAnError(t *testing.T) {
	d := dir(t, map[string]string{"locals": "a\nb\x00c\n", "me": "x\x00y"})
	if _, err := d.Lines("locals"); err == nil || !strings.Contains(err.Error(), "locals:2:") {
		t.Errorf("Lines with NUL: %v", err)
	}
	if _, _, err := d.Line("me"); err == nil || !strings.Contains(err.Error(), "me:1:") {
		t.Errorf("Line with NUL: %v", err)
	}
}

func TestUnreadableIsAnError(t *testing.T) {
	d := dir(t, nil)
	if err := os.Mkdir(d.File("locals"), 0755); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Lines("locals"); err == nil || !strings.Contains(err.Error(), "locals") {
		t.Errorf("reading a directory: %v", err)
	}
}

func TestUnknownNamePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("reading an unlisted control file did not panic")
		}
	}()
	dir(t, nil).Line("no-such-control-file")
}

func TestErrorf(t *testing.T) {
	d := dir(t, nil)
	err := d.Errorf("smtproutes", 3, "bad port %q", "x")
	if !strings.HasSuffix(err.Error(), "smtproutes:3: bad port \"x\"") {
		t.Errorf("Errorf = %q", err)
	}
}

func TestFilesTableIsConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range Files {
		if seen[f.Name] {
			t.Errorf("%s listed twice", f.Name)
		}
		seen[f.Name] = true
		if f.UsedBy == "" || f.Meaning == "" || f.Default == "" {
			t.Errorf("%s: incomplete entry %+v", f.Name, f)
		}
	}
}

func TestSecret(t *testing.T) {
	for _, n := range []string{"passwords", "servercert.pem", "clientcert.pem", "tls", "dkim.key"} {
		if !Secret(n) {
			t.Errorf("Secret(%q) = false", n)
		}
	}
	for _, n := range []string{"me", "rcpthosts", "tlsdestinations", "smtproutes"} {
		if Secret(n) {
			t.Errorf("Secret(%q) = true", n)
		}
	}
}

func TestText(t *testing.T) {
	d := dir(t, map[string]string{"defaultdelivery": "# deliver to the Maildir\n./Maildir/\n\n", "locals": "a\n\x00b\n"})
	v, ok, err := d.Text("defaultdelivery")
	if err != nil || !ok || v != "# deliver to the Maildir\n./Maildir/" {
		t.Fatalf("Text = %q, %v, %v", v, ok, err)
	}
	if _, ok, err := d.Text("me"); ok || err != nil {
		t.Errorf("Text(missing) = %v, %v", ok, err)
	}
	if _, _, err := d.Text("locals"); err == nil || !strings.Contains(err.Error(), "locals:2:") {
		t.Errorf("Text with NUL: %v", err)
	}
}
