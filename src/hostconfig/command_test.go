package hostconfig_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/hostconfig"
	"github.com/notqmail/notqmail/src/sandbox"
)

// The built qmail-config, in a sandbox whose first configuration was removed, writes
// it again, keeps what the site has, and refuses a hostile name without writing.
func TestQmailConfigCommand(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	ctl, alias := filepath.Join(h.Dir, "control"), filepath.Join(h.Dir, "alias")
	for _, n := range []string{"me", "defaultdomain", "plusdomain", "locals", "rcpthosts"} {
		os.Remove(filepath.Join(ctl, n))
	}
	for _, n := range hostconfig.AliasNames {
		os.Remove(filepath.Join(alias, ".qmail-"+n))
	}
	os.RemoveAll(filepath.Join(alias, "Maildir"))
	// The site's own rcpthosts stays.
	os.WriteFile(filepath.Join(ctl, "rcpthosts"), []byte("site.example\n"), 0o644)

	if out, err := h.Command("qmail-config", "evil.example\nrelay").CombinedOutput(); err == nil || !strings.Contains(string(out), "host name") {
		t.Errorf("hostile name: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(ctl, "me")); err == nil {
		t.Fatal("a refused name wrote control/me")
	}

	out, err := h.Command("qmail-config", "Mail.Example.ORG").CombinedOutput()
	if err != nil {
		t.Fatalf("qmail-config: %v\n%s", err, out)
	}
	read := func(p string) string { b, _ := os.ReadFile(p); return string(b) }
	for n, want := range map[string]string{"me": "mail.example.org\n", "defaultdomain": "example.org\n", "plusdomain": "example.org\n",
		"locals": "mail.example.org\nlocalhost\n", "rcpthosts": "site.example\n"} {
		if got := read(filepath.Join(ctl, n)); got != want {
			t.Errorf("control/%s = %q, want %q", n, got, want)
		}
	}
	for _, n := range hostconfig.AliasNames {
		if read(filepath.Join(alias, ".qmail-"+n)) != hostconfig.AliasFile {
			t.Errorf(".qmail-%s not written", n)
		}
	}
	if fi, err := os.Stat(filepath.Join(alias, "Maildir", "new")); err != nil || !fi.IsDir() {
		t.Errorf("alias Maildir: %v", err)
	}
	if !strings.Contains(string(out), "kept "+filepath.Join(ctl, "rcpthosts")) {
		t.Errorf("output does not say rcpthosts was kept:\n%s", out)
	}
	// Again: nothing changes.
	out, err = h.Command("qmail-config", "other.example").CombinedOutput()
	if err != nil || strings.Contains(string(out), "wrote") || read(filepath.Join(ctl, "me")) != "mail.example.org\n" {
		t.Errorf("second run: %v\n%s", err, out)
	}
}
