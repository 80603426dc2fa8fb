package users

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/cdb"
)

// pwFixture is a users/ directory, homes and a passwd text.
type pwFixture struct {
	usersDir, homes string
	uid             int
	passwd          string
}

func newPWFixture(t *testing.T) *pwFixture {
	t.Helper()
	dir := t.TempDir()
	f := &pwFixture{usersDir: filepath.Join(dir, "users"), homes: filepath.Join(dir, "home"), uid: os.Getuid()}
	// uid 0 is always skipped; as root, give the homes to an ordinary uid instead.
	if f.uid == 0 {
		f.uid = 1001
	}
	for _, d := range []string{f.usersDir, f.homes} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range []string{"alias", "joe", "Upper"} {
		p := filepath.Join(f.homes, h)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if os.Getuid() == 0 {
			if err := os.Chown(p, f.uid, 100); err != nil {
				t.Fatal(err)
			}
		}
	}
	u, h := f.uid, f.homes
	f.passwd = fmt.Sprintf(`root:x:0:0:root:/root:/bin/bash
alias:x:%d:2108::%s/alias:/bin/false
joe:x:%d:100:Joe User:%s/joe:/bin/sh
Upper:x:%d:100::%s/Upper:/bin/sh
nohome:x:%d:100::%s/missing:/bin/sh
other:x:%d:100::%s/joe:/bin/sh
short:x:%d:100::%s/joe
baduid:x:x1:100::%s/joe:/bin/sh
`, u, h, u, h, u, h, u, h, u+1, h, u, h, h)
	return f
}

func (f *pwFixture) write(t *testing.T, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.usersDir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// expand replaces U with the uid and H with the homes directory.
func (f *pwFixture) expand(s string) string {
	return strings.NewReplacer("U", fmt.Sprint(f.uid), "H", f.homes).Replace(s)
}

func (f *pwFixture) run(t *testing.T, o PW2UOptions) (string, error) {
	t.Helper()
	var b bytes.Buffer
	err := PW2U(strings.NewReader(f.passwd), &b, o)
	return b.String(), err
}

func TestPW2UDefault(t *testing.T) {
	f := newPWFixture(t)
	got, err := f.run(t, DefaultPW2UOptions(f.usersDir))
	if err != nil {
		t.Fatal(err)
	}
	want := f.expand(`+:alias:U:2108:H/alias:-::
=alias:alias:U:2108:H/alias:::
+alias-:alias:U:2108:H/alias:-::
=joe:joe:U:100:H/joe:::
+joe-:joe:U:100:H/joe:-::
.
`)
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestPW2UFiles(t *testing.T) {
	f := newPWFixture(t)
	f.write(t, "mailnames", "# real names\njoe:joe.smith::js  \n")
	f.write(t, "subusers", "sales:joe:sales:\nbroken line\nsupport:joe:help:ignored\n")
	f.write(t, "append", "=extra:joe:1:2:/x:::\n")
	got, err := f.run(t, DefaultPW2UOptions(f.usersDir))
	if err != nil {
		t.Fatal(err)
	}
	want := f.expand(`+:alias:U:2108:H/alias:-::
=alias:alias:U:2108:H/alias:::
+alias-:alias:U:2108:H/alias:-::
=joe.smith:joe:U:100:H/joe:::
+joe.smith-:joe:U:100:H/joe:-::
=js:joe:U:100:H/joe:::
+js-:joe:U:100:H/joe:-::
=sales:joe:U:100:H/joe:-:sales:
+sales-:joe:U:100:H/joe:-:sales-:
=support:joe:U:100:H/joe:-:help:
+support-:joe:U:100:H/joe:-:help-:
=extra:joe:1:2:/x:::
.
`)
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	// What qmail-pw2u writes, qmail-newu compiles and qmail-lspawn finds.
	path := filepath.Join(t.TempDir(), "cdb")
	if err := cdb.WriteFile(path, func(w *cdb.Writer) error { return Compile(strings.NewReader(got), "assign", w) }); err != nil {
		t.Fatal(err)
	}
	for local, want := range map[string]Assignment{
		"js":           {"joe", f.uid, 100, f.homes + "/joe", "", ""},
		"JS-foo":       {"joe", f.uid, 100, f.homes + "/joe", "-", "foo"},
		"sales-europe": {"joe", f.uid, 100, f.homes + "/joe", "-", "sales-europe"},
		"nobody":       {"alias", f.uid, 2108, f.homes + "/alias", "-", "nobody"},
	} {
		a, ok, err := Lookup(path, local)
		if err != nil || !ok || a != want {
			t.Errorf("Lookup(%q) = %+v, %v, %v; want %+v", local, a, ok, err, want)
		}
	}
}

func TestPW2UOptions(t *testing.T) {
	f := newPWFixture(t)
	o := DefaultPW2UOptions(f.usersDir)

	o.Home = HomeIgnore
	got, err := f.run(t, o)
	if err != nil || !strings.Contains(got, f.expand("=nohome:nohome:U:100:H/missing:::\n")) ||
		!strings.Contains(got, "=other:other:") {
		t.Errorf("-H: %v\n%s", err, got)
	}

	o = DefaultPW2UOptions(f.usersDir)
	o.Home = HomeRequire
	if _, err := f.run(t, o); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("-h with a missing home: err = %v", err)
	}

	o = DefaultPW2UOptions(f.usersDir)
	o.AllowUpper = true
	if got, err := f.run(t, o); err != nil || !strings.Contains(got, "=Upper:Upper:") {
		t.Errorf("-u: %v\n%s", err, got)
	}

	o = DefaultPW2UOptions(f.usersDir)
	o.Break = ""
	if got, err := f.run(t, o); err != nil || strings.Contains(got, "+joe") || !strings.Contains(got, "+:alias:") {
		t.Errorf("-C: %v\n%s", err, got)
	}

	o = DefaultPW2UOptions(f.usersDir)
	o.Break = ParseBreak("+x")
	if got, err := f.run(t, o); err != nil || !strings.Contains(got, f.expand("+joe+:joe:U:100:H/joe:-::\n")) {
		t.Errorf("-c +: %v\n%s", err, got)
	}

	o = DefaultPW2UOptions(f.usersDir)
	o.Dash = "-/"
	if got, err := f.run(t, o); err != nil || !strings.Contains(got, f.expand("+joe-:joe:U:100:H/joe:-/::\n")) {
		t.Errorf("-/: %v\n%s", err, got)
	}
}

func TestPW2UIncludeExclude(t *testing.T) {
	f := newPWFixture(t)
	f.write(t, "include", "alias\njoe\n")
	f.write(t, "exclude", "joe\n")
	got, err := f.run(t, DefaultPW2UOptions(f.usersDir))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "joe") || !strings.Contains(got, "=alias:") {
		t.Errorf("include/exclude:\n%s", got)
	}
	f.write(t, "include", "joe\n")
	f.write(t, "exclude", "")
	if _, err := f.run(t, DefaultPW2UOptions(f.usersDir)); err == nil || !strings.Contains(err.Error(), "alias") {
		t.Errorf("without the alias user: err = %v", err)
	}
}

func TestPW2UErrors(t *testing.T) {
	f := newPWFixture(t)
	f.write(t, "subusers", "sales:ghost:sales:\n")
	var b bytes.Buffer
	err := PW2U(strings.NewReader(f.passwd), &b, DefaultPW2UOptions(f.usersDir))
	if err == nil || !strings.Contains(err.Error(), "ghost") {
		t.Errorf("unknown subuser owner: err = %v", err)
	}
	if b.Len() != 0 {
		t.Errorf("output written despite the error: %q", b.String())
	}
	os.Remove(filepath.Join(f.usersDir, "subusers"))
	long := strings.Repeat("x", maxLine+10) + "\n"
	if err := PW2U(strings.NewReader(long), &b, DefaultPW2UOptions(f.usersDir)); err == nil {
		t.Error("an over-long passwd line was accepted")
	}
	o := DefaultPW2UOptions(f.usersDir)
	o.Break = "ab"
	if err := PW2U(strings.NewReader(f.passwd), &b, o); err == nil {
		t.Error("a two-character delimiter was accepted")
	}
}

func TestParsePW2UArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		want PW2UOptions
	}{
		{nil, PW2UOptions{"d", HomeSkipMissing, false, "-", "-"}},
		{[]string{"-hu"}, PW2UOptions{"d", HomeRequire, true, "-", "-"}},
		{[]string{"-H", "-/", "-c+"}, PW2UOptions{"d", HomeIgnore, false, "+", "-/"}},
		{[]string{"-uUc", "="}, PW2UOptions{"d", HomeSkipMissing, false, "=", "-"}},
		{[]string{"-C", "-o", "--"}, PW2UOptions{"d", HomeSkipMissing, false, "", "-"}},
	} {
		got, err := ParsePW2UArgs(c.args, "d")
		if err != nil || got != c.want {
			t.Errorf("ParsePW2UArgs(%q) = %+v, %v; want %+v", c.args, got, err, c.want)
		}
	}
	for _, bad := range [][]string{{"-x"}, {"-c"}, {"file"}, {"--", "file"}, {"-"}} {
		if _, err := ParsePW2UArgs(bad, "d"); err == nil {
			t.Errorf("ParsePW2UArgs(%q) succeeded", bad)
		}
	}
}
