package showctl

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/control"
)

func setup(t *testing.T, files map[string]string) Config {
	t.Helper()
	dir := t.TempDir()
	ctl := filepath.Join(dir, "control")
	if err := os.Mkdir(ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(ctl, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Config{
		Home: dir, ControlDir: ctl, Split: 23,
		UIDs: []int{7790, 7791, 7792, 0, 7793, 7794, 7795, 7796},
		GIDs: []int{2107, 2108},
	}
}

func show(t *testing.T, c Config) string {
	t.Helper()
	var b bytes.Buffer
	if err := Show(&b, c); err != nil {
		t.Fatalf("Show: %v\n%s", err, b.String())
	}
	return b.String()
}

func TestShowTypical(t *testing.T) {
	c := setup(t, map[string]string{
		"me":                "mail.example.org\n",
		"locals":            "localhost\nmail.example.org\n",
		"rcpthosts":         "example.org\n.example.org\n",
		"concurrencyremote": "40\n",
		"bouncefrom":        "bounces  \n",
		"smtproutes":        ":relay.example.net:2525\n",
		"virtualdomains":    "lists.example.org:lists\n",
		"surprise":          "?\n",
		"tcp.smtp":          "x",
	})
	out := show(t, c)
	head := "qmail home directory: " + c.Home + ".\n" +
		"user-ext delimiter: -.\n" +
		"paternalism (in decimal): 2.\n" +
		"silent concurrency limit: 120.\n" +
		"subdirectory split: 23.\n" +
		"user ids: 7790, 7791, 7792, 0, 7793, 7794, 7795, 7796.\n" +
		"group ids: 2107, 2108.\n"
	if !strings.HasPrefix(out, head) {
		t.Errorf("header:\n%s\nwant\n%s", out[:min(len(out), len(head))], head)
	}
	for _, want := range []string{
		"\nbadmailfrom: (Default.) Any MAIL FROM is allowed.\n",
		"\nbouncefrom: Bounce user name is bounces.\n",
		"\nbouncehost: (Default.) Bounce host name is mail.example.org.\n",
		"\nconcurrencylocal: (Default.) Local concurrency is 10.\n",
		"\nconcurrencyremote: Remote concurrency is 40.\n",
		"\ndatabytes: (Default.) SMTP DATA limit is 0 bytes.\n",
		"\ndoublebounceto: (Default.) 2B recipient user: postmaster.\n",
		"\nlocals: \nMessages for localhost are delivered locally.\nMessages for mail.example.org are delivered locally.\n",
		"\nme: My name is mail.example.org.\n",
		"\nqueuelifetime: (Default.) Message lifetime in the queue is 604800 seconds.\n",
		"\nrcpthosts: \nSMTP clients may send messages to recipients at example.org.\nSMTP clients may send messages to recipients at .example.org.\n",
		"\nmorercpthosts: (Default.) No effect.\n",
		"\nmorercpthosts.cdb: (Default.) No effect.\n",
		"\nsmtpgreeting: (Default.) SMTP greeting: 220 mail.example.org.\n",
		"\nsmtproutes: \nSMTP route: :relay.example.net:2525\n",
		"\ntimeoutsmtpd: (Default.) SMTP server data timeout is 1200 seconds.\n",
		"\nvirtualdomains: \nVirtual domain: lists.example.org:lists\n",
		"\nsurprise: I have no idea what this file does.\n\ntcp.smtp: I have no idea what this file does.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// qmail's order: alphabetical, with morercpthosts right after rcpthosts, and the
	// unknown files last.
	order := []string{"\nbadmailfrom:", "\nbouncefrom:", "\nlocals:", "\nme:", "\nrcpthosts:", "\nmorercpthosts:", "\nmorercpthosts.cdb:", "\nsmtpgreeting:", "\nvirtualdomains:", "\nsurprise:"}
	last := -1
	for _, o := range order {
		i := strings.Index(out, o)
		if i <= last {
			t.Errorf("%q is out of order", o)
		}
		last = i
	}
	// Every control file the project reads is reported.
	for _, f := range control.Files {
		if !strings.Contains(out, "\n"+f.Name+": ") {
			t.Errorf("%s is not reported", f.Name)
		}
	}
	if strings.Contains(out, "\nme: I have no idea") {
		t.Error("a known file was called unknown")
	}
}

func TestShowNoMe(t *testing.T) {
	out := show(t, setup(t, nil))
	for _, want := range []string{
		"\nme: (Default.) My name is undefined! Uh-oh.\n",
		"\nbouncehost: (Default.) Bounce host name is bouncehost.\n",
		"\nrcpthosts: (Default.) SMTP clients may not send messages to any recipient (unless RELAYCLIENT is set).\n",
		"\nmorercpthosts: (Default.) No rcpthosts; morercpthosts is irrelevant.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "I have no idea") {
		t.Error("an empty control dir has unknown files")
	}
}

func TestShowMorercpthosts(t *testing.T) {
	c := setup(t, map[string]string{"me": "a.example\n", "morercpthosts": "b.example\n"})
	out := show(t, c)
	for _, want := range []string{
		"\nmorercpthosts: \nNo rcpthosts; doesn't matter that morercpthosts has b.example.\n",
		"\nmorercpthosts.cdb: Oops! morercpthosts exists but morercpthosts.cdb doesn't.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	cdb := filepath.Join(c.ControlDir, "morercpthosts.cdb")
	os.WriteFile(cdb, make([]byte, 2048), 0o644)
	os.WriteFile(filepath.Join(c.ControlDir, "rcpthosts"), []byte("a.example\n"), 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(cdb, old, old)
	out = show(t, c)
	for _, want := range []string{
		"\nmorercpthosts: \nSMTP clients may send messages to recipients at b.example.\n",
		"\nmorercpthosts.cdb: Oops! morercpthosts.cdb is older than morercpthosts.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	now := time.Now().Add(time.Hour)
	os.Chtimes(cdb, now, now)
	if out := show(t, c); !strings.Contains(out, "\nmorercpthosts.cdb: Modified recently enough; hopefully up to date.\n") {
		t.Error("an up-to-date cdb is not recognised")
	}
	os.Remove(filepath.Join(c.ControlDir, "morercpthosts"))
	if out := show(t, c); !strings.Contains(out, "\nmorercpthosts.cdb: Oops! morercpthosts.cdb exists but morercpthosts doesn't.\n") {
		t.Error("a lone cdb is not flagged")
	}
}

func TestShowHostileValues(t *testing.T) {
	c := setup(t, map[string]string{
		"me":        "evil\x1b[2Jhost\n",
		"databytes": "lots\n",
		"locals":    "a\x07b\n",
	})
	os.WriteFile(filepath.Join(c.ControlDir, "bad\x1bname"), nil, 0o644)
	out := show(t, c)
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Error("control characters reached the output")
	}
	for _, want := range []string{
		"\nme: My name is evil?[2Jhost.\n",
		"\ndatabytes: Oops! Trouble reading this file: ",
		"\nMessages for a?b are delivered locally.\n",
		"\nbad?name: I have no idea what this file does.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestShowNoControlDir(t *testing.T) {
	c := setup(t, nil)
	c.ControlDir = filepath.Join(c.Home, "missing")
	var b bytes.Buffer
	if err := Show(&b, c); err == nil {
		t.Error("Show without a control directory succeeded")
	}
	if !strings.Contains(b.String(), "Oops! Unable to open") {
		t.Errorf("output: %s", b.String())
	}
}

func TestDefaultInSandbox(t *testing.T) {
	dir := t.TempDir()
	uid := os.Getuid()
	if uid == 0 {
		// Sandbox mode needs a non-root owner of QMAILHOME; root can make one.
		uid = 65534
		if err := os.Chown(dir, uid, 65534); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("QMAILHOME", dir)
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range c.UIDs {
		if u != uid {
			t.Errorf("sandbox uid %d, want the owner's %d", u, uid)
		}
	}
	if c.Home != dir || c.ControlDir != filepath.Join(dir, "control") {
		t.Errorf("Config = %+v", c)
	}
}

// TestShowFilesQmailNeverKnew: files only this project reads are listed with their lines,
// except key material, which is never printed.
func TestShowFilesQmailNeverKnew(t *testing.T) {
	c := setup(t, map[string]string{
		"me":              "a.example\n",
		"badrcptto":       "spam@a.example\n",
		"defaultdelivery": "./Maildir/\n",
		"clientcert.pem":  "-----BEGIN PRIVATE KEY-----\nsecret\n",
		"passwords":       "alice:$2a$10$secrethash\n",
	})
	if err := os.Mkdir(filepath.Join(c.ControlDir, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(c.ControlDir, "tls", "a.example.pem"), []byte("secret"), 0o600)
	out := show(t, c)
	for _, want := range []string{
		"\nbadrcptto: \nspam@a.example not accepted in RCPT TO.\n",
		"\ndefaultdelivery: \n./Maildir/\n",
		"\nclientcert.pem: Present; its contents are not shown.\n",
		"\npasswords: Present; its contents are not shown.\n",
		"\ntls: Present (a directory); its contents are not shown.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "secret") || strings.Contains(out, "PRIVATE") {
		t.Error("key material or a password hash was printed")
	}
	os.Remove(filepath.Join(c.ControlDir, "defaultdelivery"))
	info := fileInfo("defaultdelivery")
	if out := show(t, c); !strings.Contains(out, "\ndefaultdelivery: (Default.) "+info.Default+".\n") {
		t.Error("a missing file qmail never knew does not show its default")
	}
}
