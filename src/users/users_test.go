package users

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/cdb"
	"github.com/notqmail/notqmail/src/testpeer"
)

const sampleAssign = `=joe:joe:1001:100:/home/joe:::
=Postmaster:alias:7790:2108:/var/qmail/alias:-:postmaster:
+list-:lists:1002:100:/home/lists:-:ml-:
+LIST-A:lists:1002:100:/home/lists:-:a-:
+:alias:7790:2108:/var/qmail/alias:-::
+jo:joe:1001:100:/home/joe:-::
.
this text after the dot is ignored
`

// qmailRecords is what qmail-newu writes for sampleAssign, worked out by hand from its
// rules, in order.
var qmailRecords = []cdb.Record{
	{Key: []byte("!joe\x00"), Data: []byte("joe\x001001\x00100\x00/home/joe\x00\x00")},
	{Key: []byte("!postmaster\x00"), Data: []byte("alias\x007790\x002108\x00/var/qmail/alias\x00-\x00postmaster")},
	{Key: []byte("!list-"), Data: []byte("lists\x001002\x00100\x00/home/lists\x00-\x00ml-")},
	{Key: []byte("!list-a"), Data: []byte("lists\x001002\x00100\x00/home/lists\x00-\x00a-")},
	{Key: []byte("!"), Data: []byte("alias\x007790\x002108\x00/var/qmail/alias\x00-\x00")},
	{Key: []byte("!jo"), Data: []byte("joe\x001001\x00100\x00/home/joe\x00-\x00")},
	{Key: []byte(""), Data: []byte("-ao")},
}

func newu(t *testing.T, assign string) string {
	t.Helper()
	dir := t.TempDir()
	a := filepath.Join(dir, "assign")
	if err := os.WriteFile(a, []byte(assign), 0o644); err != nil {
		t.Fatal(err)
	}
	c := filepath.Join(dir, "cdb")
	if err := NewU(a, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCompileRecords(t *testing.T) {
	path := newu(t, sampleAssign)
	r, err := cdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	i := 0
	for rec, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		if i >= len(qmailRecords) {
			t.Fatalf("extra record %q", rec.Key)
		}
		if want := qmailRecords[i]; !bytes.Equal(rec.Key, want.Key) || !bytes.Equal(rec.Data, want.Data) {
			t.Errorf("record %d = %q -> %q, want %q -> %q", i, rec.Key, rec.Data, want.Key, want.Data)
		}
		i++
	}
	if i != len(qmailRecords) {
		t.Errorf("%d records, want %d", i, len(qmailRecords))
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("users/cdb.tmp left behind: %v", err)
	}
}

// TestSameBytesAsCdbmake: our users/cdb is byte for byte the file a cdbmake-style tool
// (tinycdb) makes from qmail-newu's records, so the hash layout matches qmail's too.
func TestSameBytesAsCdbmake(t *testing.T) {
	tool := testpeer.Need(t, "cdb")
	ours, err := os.ReadFile(newu(t, sampleAssign))
	if err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(t.TempDir(), "theirs.cdb")
	cmd := exec.Command(tool, "-c", theirs)
	cmd.Stdin = bytes.NewReader(cdbmakeInput(qmailRecords))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cdb -c: %v %s", err, out)
	}
	b, _ := os.ReadFile(theirs)
	if !bytes.Equal(ours, b) {
		t.Error("our users/cdb differs from tinycdb's file of the same records")
	}
}

func cdbmakeInput(rs []cdb.Record) []byte {
	var b bytes.Buffer
	for _, r := range rs {
		fmt.Fprintf(&b, "+%d,%d:%s->%s\n", len(r.Key), len(r.Data), r.Key, r.Data)
	}
	b.WriteString("\n")
	return b.Bytes()
}

func TestLookup(t *testing.T) {
	path := newu(t, sampleAssign)
	for _, c := range []struct {
		local string
		want  Assignment
	}{
		{"joe", Assignment{"joe", 1001, 100, "/home/joe", "", ""}},
		{"JOE", Assignment{"joe", 1001, 100, "/home/joe", "", ""}},
		{"postmaster", Assignment{"alias", 7790, 2108, "/var/qmail/alias", "-", "postmaster"}},
		{"PostMaster", Assignment{"alias", 7790, 2108, "/var/qmail/alias", "-", "postmaster"}},
		// Longest wildcard wins, and the rest of local (in its own case) ends Ext.
		{"list-a-Foo", Assignment{"lists", 1002, 100, "/home/lists", "-", "a--Foo"}},
		{"List-B", Assignment{"lists", 1002, 100, "/home/lists", "-", "ml-B"}},
		{"list-", Assignment{"lists", 1002, 100, "/home/lists", "-", "ml-"}},
		// "+jo" takes joey but not joe, which has an exact entry.
		{"joey", Assignment{"joe", 1001, 100, "/home/joe", "-", "ey"}},
		// The empty prefix catches everything else.
		{"nobody", Assignment{"alias", 7790, 2108, "/var/qmail/alias", "-", "nobody"}},
		{"", Assignment{"alias", 7790, 2108, "/var/qmail/alias", "-", ""}},
	} {
		got, ok, err := Lookup(path, c.local)
		if err != nil || !ok || got != c.want {
			t.Errorf("Lookup(%q) = %+v, %v, %v; want %+v", c.local, got, ok, err, c.want)
		}
	}
}

func TestLookupNoMatch(t *testing.T) {
	path := newu(t, "=joe:joe:1001:100:/home/joe:::\n+list-:lists:1002:100:/home/lists:-::\n.\n")
	for _, local := range []string{"joey", "jo", "list", "nobody", "a\x00b"} {
		if a, ok, err := Lookup(path, local); ok || err != nil {
			t.Errorf("Lookup(%q) = %+v, %v, %v; want no match", local, a, ok, err)
		}
	}
	if a, ok, err := Lookup(filepath.Join(t.TempDir(), "missing"), "joe"); ok || err != nil {
		t.Errorf("Lookup without users/cdb = %+v, %v, %v; want no match, no error", a, ok, err)
	}
}

// TestLookupWildcharFilter: a wildcard key is only tried when its last character is
// listed in the empty-key record, exactly as qmail-lspawn does; a qmail-made file whose
// list lacks a character hides that wildcard.
func TestLookupWildcharFilter(t *testing.T) {
	tool := testpeer.Need(t, "cdb")
	path := filepath.Join(t.TempDir(), "cdb")
	rs := []cdb.Record{
		{Key: []byte("!ab"), Data: []byte("u\x001\x002\x00/h\x00-\x00x")},
		{Key: []byte("!a"), Data: []byte("v\x003\x004\x00/g\x00\x00")},
		{Key: []byte(""), Data: []byte("a")}, // "b" missing
	}
	cmd := exec.Command(tool, "-c", path)
	cmd.Stdin = bytes.NewReader(cdbmakeInput(rs))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cdb -c: %v %s", err, out)
	}
	got, ok, err := Lookup(path, "abc")
	want := Assignment{"v", 3, 4, "/g", "", "bc"}
	if err != nil || !ok || got != want {
		t.Errorf("Lookup(abc) = %+v, %v, %v; want %+v", got, ok, err, want)
	}
}

func TestLookupDamaged(t *testing.T) {
	dir := t.TempDir()
	for name, rs := range map[string][]cdb.Record{
		"no wildchars": {{Key: []byte("!joe\x00"), Data: []byte("joe\x001\x002\x00/h\x00\x00")}},
		"short data":   {{Key: []byte("!joe\x00"), Data: []byte("joe\x001\x002")}, {Key: nil, Data: nil}},
		"bad uid":      {{Key: []byte("!joe\x00"), Data: []byte("joe\x00x\x002\x00/h\x00\x00")}, {Key: nil, Data: nil}},
		"bad gid":      {{Key: []byte("!joe\x00"), Data: []byte("joe\x001\x00-2\x00/h\x00\x00")}, {Key: nil, Data: nil}},
		"extra field":  {{Key: []byte("!joe\x00"), Data: []byte("joe\x001\x002\x00/h\x00\x00\x00x")}, {Key: nil, Data: nil}},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		err := cdb.WriteFile(path, func(w *cdb.Writer) error {
			for _, r := range rs {
				w.Add(r.Key, r.Data)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		_, ok, err := Lookup(path, "joe")
		var ue *Error
		if ok || !errors.As(err, &ue) || ue.File != path {
			t.Errorf("%s: ok %v, err %v; want an error naming the file", name, ok, err)
		}
	}
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not a cdb"), 0o644)
	if _, _, err := Lookup(garbage, "joe"); err == nil {
		t.Error("Lookup in a garbage file succeeded")
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		assign string
		line   int
		msg    string
	}{
		{"=joe:joe:1:2:/h:::\n", 2, "missing the final line"},
		{"", 1, "missing the final line"},
		{"=joe:joe:1:2:/h:::", 1, "incomplete"},
		{"=joe:joe:1:2:/h::\n.\n", 1, "found 6"},
		{"=joe:joe:1:2:/h::::\n.\n", 1, "found 8"},
		{"=joe:joe:1:2:/h:::x\n.\n", 1, "found 7"},
		{"=a:a:1:2:/h:::\n=joe:joe:x:2:/h:::\n.\n", 2, `uid "x"`},
		{"=joe:joe:1:-2:/h:::\n.\n", 1, `gid "-2"`},
		{"=joe:joe:99999999999:2:/h:::\n.\n", 1, "uid"},
		{"=joe:joe::2:/h:::\n.\n", 1, "uid"},
		{"=joe::1:2:/h:::\n.\n", 1, "empty user"},
		{"=:joe:1:2:/h:::\n.\n", 1, "empty local"},
		{"=joe:joe:1:2:h:::\n.\n", 1, "absolute"},
		{"joe:joe:1:2:/h:::\n.\n", 1, "must start with = or +"},
		{"\n.\n", 1, "empty line"},
		{"=jo\x00e:joe:1:2:/h:::\n.\n", 1, "NUL"},
		{"=joe:joe:1:2:/" + strings.Repeat("x", maxLine) + ":::\n.\n", 1, "longer than"},
	} {
		_, err := ParseAssign(strings.NewReader(c.assign), "users/assign")
		var ue *Error
		if !errors.As(err, &ue) || ue.File != "users/assign" || ue.Line != c.line || !strings.Contains(ue.Msg, c.msg) {
			t.Errorf("ParseAssign(%.40q) = %v; want users/assign:%d: ...%s...", c.assign, err, c.line, c.msg)
		}
	}
}

func TestParseAccepts(t *testing.T) {
	es, err := ParseAssign(strings.NewReader("=joe:joe:1:2:/h:::  \r\n+:alias:3:4:/a:-::\r\n.\r\n"), "assign")
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Local: "joe", Assignment: Assignment{"joe", 1, 2, "/h", "", ""}, Line: 1},
		{Wild: true, Local: "", Assignment: Assignment{"alias", 3, 4, "/a", "-", ""}, Line: 2},
	}
	if fmt.Sprint(es) != fmt.Sprint(want) {
		t.Errorf("got %+v, want %+v", es, want)
	}
	if es[0].String() != "=joe:joe:1:2:/h:::" || es[1].String() != "+:alias:3:4:/a:-::" {
		t.Errorf("String: %q %q", es[0].String(), es[1].String())
	}
	// A final dot without a newline ends the file too.
	if _, err := ParseAssign(strings.NewReader("=joe:joe:1:2:/h:::\n."), "assign"); err != nil {
		t.Errorf("final dot without newline: %v", err)
	}
}

func TestNewUErrorKeepsOldCdb(t *testing.T) {
	path := newu(t, sampleAssign)
	before, _ := os.ReadFile(path)
	assign := filepath.Join(filepath.Dir(path), "assign")
	os.WriteFile(assign, []byte("=joe:joe:1:2:/h:::\n"), 0o644)
	if err := NewU(assign, path); err == nil {
		t.Fatal("NewU accepted an assign without the final dot")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("a failed NewU changed users/cdb")
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("users/cdb.tmp left behind: %v", err)
	}
	if err := NewU(filepath.Join(t.TempDir(), "nope"), path); err == nil {
		t.Error("NewU without users/assign succeeded")
	}
}

// FuzzAssign: any input parses or fails cleanly, and whatever compiles can be looked up.
func FuzzAssign(f *testing.F) {
	f.Add(sampleAssign, "list-a-b")
	f.Add("=a:b:1:2:/c:::\n.\n", "A")
	f.Fuzz(func(t *testing.T, assign, local string) {
		dir := t.TempDir()
		path := filepath.Join(dir, "cdb")
		err := cdb.WriteFile(path, func(w *cdb.Writer) error {
			return Compile(strings.NewReader(assign), "assign", w)
		})
		if err != nil {
			return
		}
		if _, _, err := Lookup(path, local); err != nil {
			t.Errorf("Lookup(%q) in a file we compiled: %v", local, err)
		}
	})
}
