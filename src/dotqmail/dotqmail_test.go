package dotqmail

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
)

func TestParseKinds(t *testing.T) {
	in := "# a comment\n" +
		"|preline /usr/bin/vacation joe  \t\n" +
		"&me@new.example\n" +
		"you@other.example\n" +
		"./Mailbox\n" +
		"/var/mail/joe\n" +
		"./Maildir/\n" +
		"\n" +
		"+other\n" +
		"1st@digit.example" // no final newline
	f, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Instruction{
		{Program, "preline /usr/bin/vacation joe", 2},
		{Forward, "me@new.example", 3},
		{Forward, "you@other.example", 4},
		{Mbox, "./Mailbox", 5},
		{Mbox, "/var/mail/joe", 6},
		{Maildir, "./Maildir/", 7},
		{Forward, "1st@digit.example", 10},
	}
	if !reflect.DeepEqual(f.Instructions, want) {
		t.Fatalf("got %+v\nwant %+v", f.Instructions, want)
	}
}

func TestParseBlankFirstLine(t *testing.T) {
	for _, in := range []string{"\n./Mailbox\n", "  \t\n./Mailbox\n", "\x00junk\n"} {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrBlankFirstLine) {
			t.Errorf("Parse(%q) err = %v, want ErrBlankFirstLine", in, err)
		}
	}
	// Later blank lines, and lines that start with NUL, are skipped.
	f, err := Parse([]byte("./a\n\n \n\x00x\n./b\n"))
	if err != nil || len(f.Instructions) != 2 {
		t.Fatalf("got %+v, %v", f, err)
	}
}

func TestParseKeepsCarriageReturn(t *testing.T) {
	// qmail trims only spaces and tabs: "./Maildir/\r" is an mbox named with a CR.
	f, err := Parse([]byte("./Maildir/\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Instructions[0]; got.Kind != Mbox || got.Target != "./Maildir/\r" {
		t.Fatalf("got %+v", got)
	}
}

func TestParseList(t *testing.T) {
	f, err := Parse([]byte("./before\n+list  \nme@x.example\n+lists\n"))
	want := []Instruction{{Mbox, "./before", 1}, {List, "", 2}, {Forward, "me@x.example", 3}}
	if err != nil || !reflect.DeepEqual(f.Instructions, want) {
		t.Fatalf("got %+v, %v", f, err)
	}
}

func TestParseNULEndsText(t *testing.T) {
	f, err := Parse([]byte("|echo hi\x00; rm -rf /\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Instructions[0].Target; got != "echo hi" {
		t.Fatalf("target %q", got)
	}
}

func TestSafeExt(t *testing.T) {
	if got := SafeExt("Foo.Bar-../X"); got != "foo:bar-::/x" {
		t.Fatalf("SafeExt = %q", got)
	}
}

func write(t *testing.T, dir, name, body string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func TestSearchOrder(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, ".qmail-default", "d\n", 0o644)
	write(t, dir, ".qmail-a-default", "ad\n", 0o644)
	write(t, dir, ".qmail-a-b-c", "abc\n", 0o644)
	write(t, dir, ".qmail-x:y", "xy\n", 0o644)
	cases := []struct {
		ext, name, def string
		hasDef         bool
	}{
		{"a-b-c", ".qmail-a-b-c", "", false},
		{"A-B-C", ".qmail-a-b-c", "", false},
		{"a-b-d", ".qmail-a-default", "b-d", true},
		{"a-", ".qmail-a-default", "", true},
		{"a", ".qmail-default", "a", true},
		{"zz-Top", ".qmail-default", "zz-Top", true},
		{"X.Y", ".qmail-x:y", "", false},
		{"a-Default", ".qmail-a-default", "Default", true},
	}
	for _, c := range cases {
		f, ok, err := Search(dir, "-", c.ext)
		if err != nil || !ok {
			t.Errorf("Search(%q): ok=%v err=%v", c.ext, ok, err)
			continue
		}
		if f.Name != c.name || f.Default != c.def || f.HasDefault != c.hasDef {
			t.Errorf("Search(%q) = %s DEFAULT=%q/%v, want %s %q/%v", c.ext, f.Name, f.Default, f.HasDefault, c.name, c.def, c.hasDef)
		}
	}
}

func TestSearchNone(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, ".qmail-other", "x\n", 0o644)
	if _, ok, err := Search(dir, "-", "foo-bar"); ok || err != nil {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	// The bare user: .qmail, then (as qmail's loop does) .qmaildefault.
	if _, ok, err := Search(dir, "", ""); ok || err != nil {
		t.Fatalf("bare: ok=%v err=%v", ok, err)
	}
	write(t, dir, ".qmail", "./Mailbox\n", 0o600)
	f, ok, err := Search(dir, "", "")
	if err != nil || !ok || f.Name != ".qmail" || string(f.Data) != "./Mailbox\n" || f.HasDefault {
		t.Fatalf("bare .qmail: %+v %v %v", f, ok, err)
	}
}

func TestSearchIgnoresNonRegular(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, ".qmail-foo"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, ".qmail-bar"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", filepath.Join(dir, ".qmail-baz")); err != nil {
		t.Fatal(err)
	}
	write(t, dir, ".qmail-default", "d\n", 0o644)
	for _, ext := range []string{"foo", "bar", "baz"} {
		f, ok, err := Search(dir, "-", ext)
		if err != nil || !ok || f.Name != ".qmail-default" {
			t.Errorf("Search(%s) = %+v %v %v", ext, f, ok, err)
		}
	}
}

func TestSearchLongExtension(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, ".qmail-default", "d\n", 0o644)
	long := make([]byte, 400)
	for i := range long {
		long[i] = 'x'
	}
	f, ok, err := Search(dir, "-", string(long))
	if err != nil || !ok || f.Name != ".qmail-default" {
		t.Fatalf("got %+v %v %v", f, ok, err)
	}
}

func TestSearchRefusesWritable(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, ".qmail-foo", "x\n", 0o646)
	_, _, err := Search(dir, "-", "foo")
	var e *Error
	if !errors.As(err, &e) || e.Msg != "Uh-oh: .qmail file is writable. (#4.7.0)" {
		t.Fatalf("err = %v", err)
	}
}

func TestSearchExecutableIsForwardOnly(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, ".qmail-foo", "x@y.example\n", 0o744)
	f, ok, err := Search(dir, "-", "foo")
	if err != nil || !ok || !f.ForwardOnly {
		t.Fatalf("got %+v %v %v", f, ok, err)
	}
}

func TestSearchUnreadableIsTemporary(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file; the end-to-end tests cover this as an unprivileged uid")
	}
	dir := t.TempDir()
	write(t, dir, ".qmail-foo", "x\n", 0o000)
	_, _, err := Search(dir, "-", "foo")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v", err)
	}
}

func TestExists(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, ".qmail-list-owner", "x\n", 0o644)
	if ok, err := Exists(dir, "-", "LIST", "-owner"); !ok || err != nil {
		t.Fatalf("owner: %v %v", ok, err)
	}
	if ok, err := Exists(dir, "-", "list", "-owner-default"); ok || err != nil {
		t.Fatalf("owner-default: %v %v", ok, err)
	}
}

func TestIsTemporary(t *testing.T) {
	if !IsTemporary(syscall.ENOSPC) || !IsTemporary(&os.PathError{Op: "open", Path: "x", Err: syscall.EDQUOT}) {
		t.Fatal("ENOSPC/EDQUOT not temporary")
	}
	if IsTemporary(syscall.ENOENT) || IsTemporary(syscall.EACCES) {
		t.Fatal("ENOENT/EACCES temporary")
	}
}
