package rcpthosts

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/notqmail/notqmail/src/cdb"
	"github.com/notqmail/notqmail/src/testpeer"
)

func controlDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func open(t *testing.T, dir string) *Matcher {
	t.Helper()
	m, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func expect(t *testing.T, m *Matcher, accept map[string]bool) {
	t.Helper()
	for domain, want := range accept {
		got, err := m.Check(domain)
		if err != nil || got != want {
			t.Errorf("Check(%q) = %v, %v; want %v", domain, got, err, want)
		}
		if m.Accept(domain) != want {
			t.Errorf("Accept(%q) != %v", domain, want)
		}
	}
}

func TestRcpthosts(t *testing.T) {
	dir := controlDir(t, map[string]string{
		"rcpthosts": "# ours\nExample.ORG  \n.example.net\t\n\nlocalhost\n",
	})
	m := open(t, dir)
	if !m.Configured() {
		t.Fatal("rcpthosts exists but Configured is false")
	}
	expect(t, m, map[string]bool{
		"example.org":         true,
		"EXAMPLE.org":         true,
		"mail.example.org":    false, // no leading dot: exact only
		"example.net":         false, // leading dot: subdomains only
		"mail.example.net":    true,
		"a.b.Example.NET":     true,
		"localhost":           true,
		"evil-example.org":    false,
		"example.org.evil.io": false,
		"":                    false,
		"# ours":              false,
		"org":                 false,
	})
}

func TestMorercpthosts(t *testing.T) {
	dir := controlDir(t, map[string]string{
		"rcpthosts":     "example.org\n",
		"morercpthosts": "# more\nMore.Example  \n.Sub.example\n\n",
	})
	if err := NewMRH(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "morercpthosts.tmp")); !os.IsNotExist(err) {
		t.Errorf("morercpthosts.tmp left behind: %v", err)
	}
	m := open(t, dir)
	expect(t, m, map[string]bool{
		"example.org":       true,
		"more.example":      true,
		"MORE.example":      true,
		"x.more.example":    false,
		"sub.example":       false,
		"a.sub.example":     true,
		"a.b.SUB.example":   true,
		"other.example":     false,
		"# more":            false,
		"mail.example.org.": false,
	})
}

// TestNewMRHMatchesTinycdb: the keys are the lowercased lines with empty data, and the
// file is what tinycdb's cdb -c makes of them; tinycdb reads ours.
func TestNewMRHMatchesTinycdb(t *testing.T) {
	tool := testpeer.Need(t, "cdb")
	dir := controlDir(t, map[string]string{"morercpthosts": "A.example\nb.EXAMPLE \t\n#c.example\n.d.example\n"})
	if err := NewMRH(dir); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "-d", filepath.Join(dir, "morercpthosts.cdb")).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "+9,0:a.example->\n+9,0:b.example->\n+10,0:.d.example->\n\n"
	if string(out) != want {
		t.Errorf("cdb -d = %q, want %q", out, want)
	}
	theirs := filepath.Join(t.TempDir(), "theirs.cdb")
	cmd := exec.Command(tool, "-c", theirs)
	cmd.Stdin = bytes.NewReader([]byte(want))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cdb -c: %v %s", err, out)
	}
	a, _ := os.ReadFile(theirs)
	b, _ := os.ReadFile(filepath.Join(dir, "morercpthosts.cdb"))
	if !bytes.Equal(a, b) {
		t.Error("our morercpthosts.cdb differs from tinycdb's")
	}
}

// TestMoreWithoutRcpthosts: as in qmail, morercpthosts.cdb alone is not consulted.
func TestMoreWithoutRcpthosts(t *testing.T) {
	dir := controlDir(t, map[string]string{"morercpthosts": "example.org\n"})
	if err := NewMRH(dir); err != nil {
		t.Fatal(err)
	}
	m := open(t, dir)
	if m.Configured() {
		t.Error("Configured without rcpthosts")
	}
	expect(t, m, map[string]bool{"example.org": false, "anything.example": false})
	if ok, err := m.CheckAddr("user"); ok || err != nil {
		t.Errorf("CheckAddr(user) without rcpthosts = %v, %v; want refused", ok, err)
	}
}

func TestEmptyRcpthostsRefusesAll(t *testing.T) {
	m := open(t, controlDir(t, map[string]string{"rcpthosts": ""}))
	if !m.Configured() {
		t.Error("an empty rcpthosts is still configured")
	}
	expect(t, m, map[string]bool{"example.org": false})
}

func TestCheckAddr(t *testing.T) {
	m := open(t, controlDir(t, map[string]string{"rcpthosts": "example.org\n"}))
	for addr, want := range map[string]bool{
		"joe@example.org":           true,
		"joe@Example.Org":           true,
		"joe@other.org":             false,
		"\"a@b\"@example.org":       true,
		"joe@example.org@other.org": false,
		"joe":                       true, // envnoathost is local
		"joe@":                      false,
	} {
		if got, err := m.CheckAddr(addr); got != want || err != nil {
			t.Errorf("CheckAddr(%q) = %v, %v; want %v", addr, got, err, want)
		}
	}
}

func TestDamagedMorercpthosts(t *testing.T) {
	dir := controlDir(t, map[string]string{"rcpthosts": "example.org\n"})
	// A valid header whose tables point far past the end of the file.
	b := make([]byte, 2048)
	for i := 0; i < 256; i++ {
		b[i*8], b[i*8+1], b[i*8+2], b[i*8+3] = 0, 0, 0, 0x70
		b[i*8+4] = 2
	}
	os.WriteFile(filepath.Join(dir, "morercpthosts.cdb"), b, 0o644)
	m := open(t, dir)
	if ok, err := m.Check("other.example"); ok || err == nil {
		t.Errorf("Check with a damaged cdb = %v, %v; want an error", ok, err)
	}
	if m.Accept("other.example") {
		t.Error("Accept with a damaged cdb accepted")
	}
	if !m.Accept("example.org") {
		t.Error("rcpthosts itself stopped working")
	}

	os.WriteFile(filepath.Join(dir, "morercpthosts.cdb"), []byte("short"), 0o644)
	if _, err := Open(dir); err == nil {
		t.Error("Open accepted a morercpthosts.cdb shorter than a header")
	}
}

func TestNewMRHErrors(t *testing.T) {
	dir := t.TempDir()
	if err := NewMRH(dir); err == nil {
		t.Error("NewMRH without morercpthosts succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "morercpthosts.cdb")); !os.IsNotExist(err) {
		t.Error("NewMRH without morercpthosts created the cdb")
	}
	// A failure leaves the old cdb in place.
	dir = controlDir(t, map[string]string{"morercpthosts": "old.example\n"})
	if err := NewMRH(dir); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "morercpthosts"), []byte("bad\x00line\n"), 0o644)
	if err := NewMRH(dir); err == nil {
		t.Error("NewMRH accepted a NUL byte")
	}
	r, err := cdb.Open(filepath.Join(dir, "morercpthosts.cdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, ok, _ := r.Get([]byte("old.example")); !ok {
		t.Error("a failed NewMRH replaced the old cdb")
	}
}
