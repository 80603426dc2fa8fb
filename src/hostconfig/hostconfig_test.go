package hostconfig

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestControlFilesFollowConfigFast(t *testing.T) {
	cases := []struct{ fqdn, me, def, plus, locals string }{
		{"mail.example.org", "mail.example.org", "example.org", "example.org", "mail.example.org\nlocalhost\n"},
		{"A.B.Example.ORG.", "a.b.example.org", "b.example.org", "example.org", "a.b.example.org\nlocalhost\n"},
		{"example.org", "example.org", "example.org", "example.org", "example.org\nlocalhost\n"},
		{"box", "box", "box", "box", "box\nlocalhost\n"},
		{"localhost", "localhost", "localhost", "localhost", "localhost\n"},
	}
	for _, c := range cases {
		fs, err := ControlFiles(c.fqdn)
		if err != nil {
			t.Fatalf("%s: %v", c.fqdn, err)
		}
		got := map[string]string{}
		for _, f := range fs {
			got[f.Name] = f.Content
		}
		want := map[string]string{"me": c.me + "\n", "defaultdomain": c.def + "\n", "plusdomain": c.plus + "\n", "locals": c.locals, "rcpthosts": c.locals}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", c.fqdn, k, got[k], v)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: files %v", c.fqdn, got)
		}
	}
}

func TestHostileNamesRefused(t *testing.T) {
	for _, n := range []string{"", ".", "a..b", "-a.org", "a-.org", "a b.org", "a/b", "../etc", "a.org\nevil.org", "*.org", "a_b.org",
		strings.Repeat("a", 64) + ".org", strings.Repeat("a.", 130) + "org", "mail.exämple.org"} {
		if _, err := ControlFiles(n); err == nil {
			t.Errorf("%q accepted", n)
		}
	}
}

func TestApplyCreatesOnlyWhatIsAbsent(t *testing.T) {
	dir := t.TempDir()
	ctl, alias := filepath.Join(dir, "control"), filepath.Join(dir, "alias")
	os.Mkdir(ctl, 0o755)
	os.Mkdir(alias, 0o755)
	// The site's own me and a dangling rcpthosts link stay as they are.
	os.WriteFile(filepath.Join(ctl, "me"), []byte("site.example\n"), 0o644)
	os.Symlink("/nonexistent", filepath.Join(ctl, "rcpthosts"))
	os.WriteFile(filepath.Join(alias, ".qmail-root"), []byte("&admin@site.example\n"), 0o644)
	files, err := ControlFiles("mail.example.org")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Apply(ctl, alias, files, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) string { b, _ := os.ReadFile(p); return string(b) }
	if read(filepath.Join(ctl, "me")) != "site.example\n" {
		t.Error("me overwritten")
	}
	if l, _ := os.Readlink(filepath.Join(ctl, "rcpthosts")); l != "/nonexistent" {
		t.Error("rcpthosts link replaced")
	}
	if read(filepath.Join(ctl, "locals")) != "mail.example.org\nlocalhost\n" || read(filepath.Join(ctl, "defaultdomain")) != "example.org\n" {
		t.Error("locals or defaultdomain not written")
	}
	if read(filepath.Join(alias, ".qmail-root")) != "&admin@site.example\n" {
		t.Error(".qmail-root overwritten")
	}
	for _, n := range []string{".qmail-postmaster", ".qmail-mailer-daemon"} {
		fi, err := os.Stat(filepath.Join(alias, n))
		if err != nil || fi.Mode().Perm() != 0o644 || read(filepath.Join(alias, n)) != AliasFile {
			t.Errorf("%s: %v %v", n, fi, err)
		}
	}
	for _, d := range []string{"Maildir/new", "Maildir/cur", "Maildir/tmp"} {
		if fi, err := os.Stat(filepath.Join(alias, d)); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v", d, fi, err)
		}
	}
	// 3 control files, 4 Maildir directories, 2 .qmail files.
	if len(r.Created) != 9 {
		t.Errorf("created %q", r.Created)
	}
	ents, _ := os.ReadDir(ctl)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".qmail-config") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	// A second run changes nothing.
	r, err = Apply(ctl, alias, files, nil, io.Discard)
	if err != nil || len(r.Created) != 0 {
		t.Errorf("second run created %q, %v", r.Created, err)
	}
}

func TestApplyReportsUnwritableDirectory(t *testing.T) {
	files, _ := ControlFiles("mail.example.org")
	if _, err := Apply(filepath.Join(t.TempDir(), "missing"), "", files, nil, io.Discard); err == nil {
		t.Error("no error for a missing control directory")
	}
}

type fakeResolver map[string][]string

func (f fakeResolver) LookupHost(h string) ([]string, error) {
	if a, ok := f["host:"+h]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}
func (f fakeResolver) LookupAddr(a string) ([]string, error) {
	if n, ok := f["addr:"+a]; ok {
		return n, nil
	}
	return nil, errors.New("no name")
}

func TestHostFQDN(t *testing.T) {
	r := fakeResolver{
		"host:mail":      {"127.0.1.1"},
		"addr:127.0.1.1": {"other.example.net.", "mail.example.org."},
		"host:lonely":    {"127.0.0.1"},
		"addr:127.0.0.1": {"localhost"},
		"host:bad":       {"10.0.0.1"},
		"addr:10.0.0.1":  {"bad.exa mple.org"},
	}
	for h, want := range map[string]string{"mail": "mail.example.org", "Mail.Example.Com": "mail.example.com", "lonely": "lonely.localdomain", "nowhere": "nowhere.localdomain", "bad": "bad.localdomain"} {
		got, err := HostFQDN(h, r)
		if err != nil || got != want {
			t.Errorf("HostFQDN(%s) = %q, %v; want %q", h, got, err, want)
		}
	}
	if _, err := HostFQDN("a/b", r); err == nil {
		t.Error("bad host name accepted")
	}
}
