package manpage

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/testpeer"
)

const srcMan = "../../src/man"

// Every page in src/man renders, and groff reads the result without a warning.
func TestProjectPagesRender(t *testing.T) {
	pages, err := List(srcMan)
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) == 0 {
		t.Fatal("no pages found in src/man")
	}
	groff := testpeer.Need(t, "groff")
	for _, p := range pages {
		roff, err := Render(p)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if !bytes.Contains(roff, []byte(".TH "+strings.ToUpper(p.Name)+" "+p.Section)) {
			t.Errorf("%s: no .TH line naming %s:\n%.300s", p.Source, strings.ToUpper(p.Name), roff)
		}
		cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
		cmd.Stdin = bytes.NewReader(roff)
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("%s: groff: %v\n%s", p.Source, err, out)
		}
	}
}

func writePage(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRenderAllWritesGzippedPages(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	writePage(t, src, "README.md", "not a page\n")
	writePage(t, src, "foo.8.md", "% FOO 8 \"\" \"notqmail\" \"System Manager's Manual\"\n\n# NAME\n\nfoo - does foo\n")
	writePage(t, src, "dot-qmail.5.md", "% DOT-QMAIL 5\n\n# NAME\n\ndot-qmail - control delivery\n")
	pages, err := RenderAll(src, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) != 2 || pages[0].Name != "dot-qmail" || pages[1].InstallPath() != "/usr/share/man/man8/foo.8.gz" {
		t.Fatalf("pages = %+v", pages)
	}
	gz, err := os.ReadFile(filepath.Join(out, "man8", "foo.8.gz"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header carries name %q / time %v; builds would differ", zr.Name, zr.ModTime)
	}
	roff, _ := io.ReadAll(zr)
	if !bytes.Contains(roff, []byte("foo \\- does foo")) {
		t.Errorf("rendered page lacks its NAME line:\n%s", roff)
	}
	again, _ := Gzip(roff)
	again2, _ := Gzip(roff)
	if !bytes.Equal(again, again2) {
		t.Error("Gzip is not deterministic")
	}
}

func TestBadPagesAreErrors(t *testing.T) {
	cases := map[string]string{
		"notitle.8.md":   "# NAME\n\nnotitle - x\n",
		"wrongname.8.md": "% OTHER 8\n\n# NAME\n\nwrongname - x\n",
		"wrongsec.8.md":  "% WRONGSEC 1\n\n# NAME\n\nwrongsec - x\n",
		"noname.8.md":    "% NONAME 8\n\n# DESCRIPTION\n\nx\n",
	}
	for file, body := range cases {
		dir := t.TempDir()
		writePage(t, dir, file, body)
		pages, err := List(dir)
		if err != nil || len(pages) != 1 {
			t.Fatalf("%s: List = %v, %v", file, pages, err)
		}
		if _, err := Render(pages[0]); err == nil {
			t.Errorf("%s: rendered without error", file)
		} else if !strings.Contains(err.Error(), file) {
			t.Errorf("%s: error does not name the file: %v", file, err)
		}
	}
	dir := t.TempDir()
	writePage(t, dir, "qmail-foo.md", "% QMAIL-FOO 8\n")
	if _, err := List(dir); err == nil {
		t.Error("a page without a section in its name was accepted")
	}
}
