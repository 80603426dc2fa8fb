package getpw

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// db is a password database whose homes are real directories owned by the test's
// uid, so the ownership rule is checked for real.
type db map[string]Account

func (d db) lookup(name string) (Account, bool, error) {
	a, ok := d[name]
	return a, ok, nil
}

func newDB(t *testing.T) (db, string) {
	t.Helper()
	// Accounts need a nonzero uid that owns their homes: as root, give the homes to
	// an unused uid.
	uid := os.Getuid()
	if uid == 0 {
		uid = 54321
	}
	root := t.TempDir()
	mk := func(name string) string {
		p := filepath.Join(root, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if os.Getuid() == 0 {
			if err := os.Chown(p, uid, 0); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	d := db{
		"joe":                   {Name: "joe", UID: uid, GID: 100, Home: mk("joe")},
		"joe-foo":               {Name: "joe-foo", UID: uid, GID: 101, Home: mk("joe-foo")},
		"root":                  {Name: "root", UID: 0, GID: 0, Home: mk("root")},
		"nohome":                {Name: "nohome", UID: uid, GID: 1, Home: filepath.Join(root, "missing")},
		"alias":                 {Name: "alias", UID: uid + 1, GID: 2, Home: filepath.Join(root, "alias")},
		strings.Repeat("a", 31): {Name: strings.Repeat("a", 31), UID: uid, GID: 3, Home: mk("a31")},
		strings.Repeat("b", 32): {Name: strings.Repeat("b", 32), UID: uid, GID: 4, Home: mk("b32")},
		"notowner":              {Name: "notowner", UID: uid + 7, GID: 5, Home: mk("notowner")},
	}
	return d, root
}

func TestLookup(t *testing.T) {
	d, _ := newDB(t)
	cases := []struct {
		local, user, dash, ext string
	}{
		{"joe", "joe", "", ""},
		{"JOE", "joe", "", ""},
		{"joe-bar", "joe", "-", "bar"},
		{"Joe-Bar-Baz", "joe", "-", "Bar-Baz"},
		{"joe-foo", "joe-foo", "", ""},
		{"joe-foo-x", "joe-foo", "-", "x"},
		{"joe-", "joe", "-", ""},
		{"root", "alias", "-", "root"},
		{"root-x", "alias", "-", "root-x"},
		{"nohome", "alias", "-", "nohome"},
		{"notowner-a", "alias", "-", "notowner-a"},
		{strings.Repeat("a", 31) + "-x", strings.Repeat("a", 31), "-", "x"},
		{strings.Repeat("b", 32), "alias", "-", strings.Repeat("b", 32)},
		{"nobody.here", "alias", "-", "nobody.here"},
		{"", "alias", "-", ""},
	}
	for _, c := range cases {
		e, err := Lookup(c.local, d.lookup, d.lookup)
		if err != nil {
			t.Errorf("Lookup(%q): %v", c.local, err)
			continue
		}
		if e.User != c.user || e.Dash != c.dash || e.Ext != c.ext || e.Home != d[c.user].Home || e.UID != d[c.user].UID || e.GID != d[c.user].GID {
			t.Errorf("Lookup(%q) = %+v, want user %s dash %q ext %q", c.local, e, c.user, c.dash, c.ext)
		}
	}
}

func TestNoAlias(t *testing.T) {
	_, err := Lookup("x", None, None)
	var e *Error
	if !errors.As(err, &e) || e.Code != ExitNoAlias {
		t.Fatalf("err = %v", err)
	}
}

func TestDatabaseFailureIsTemporary(t *testing.T) {
	broken := func(string) (Account, bool, error) { return Account{}, false, syscall.EIO }
	_, err := Lookup("x", broken, None)
	var e *Error
	if !errors.As(err, &e) || e.Code != ExitSys {
		t.Fatalf("err = %v", err)
	}
}

func TestBytes(t *testing.T) {
	e := Entry{User: "joe", UID: 1000, GID: 100, Home: "/home/joe", Dash: "-", Ext: "foo"}
	if got := e.Bytes(); !bytes.Equal(got, []byte("joe\x001000\x00100\x00/home/joe\x00-\x00foo\x00")) {
		t.Fatalf("Bytes = %q", got)
	}
}

func TestSystem(t *testing.T) {
	a, ok, err := System("root")
	if err != nil || !ok || a.UID != 0 || a.Name != "root" {
		t.Fatalf("System(root) = %+v %v %v", a, ok, err)
	}
	if _, ok, err := System("no-such-user-here-xyz"); ok || err != nil {
		t.Fatalf("System(unknown) = %v %v", ok, err)
	}
}

func TestSandboxMapsEverythingToAlias(t *testing.T) {
	qh := t.TempDir()
	if os.Geteuid() == 0 {
		if err := os.Chown(qh, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("QMAILHOME", qh)
	e, err := Default("root")
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(qh)
	uid := int(st.Sys().(*syscall.Stat_t).Uid)
	if e.User != "alias" || e.Home != filepath.Join(qh, "alias") || e.Dash != "-" || e.Ext != "root" || e.UID != uid {
		t.Fatalf("Default(root) in sandbox = %+v", e)
	}
}
