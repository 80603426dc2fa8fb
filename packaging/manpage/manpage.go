// Package manpage renders the Markdown man pages in src/man to gzipped roff for the
// packages, checking each page's title block against its file name.
package manpage

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
)

// Page is one man page source: src/man/<Name>.<Section>.md.
type Page struct {
	Name    string
	Section string
	Source  string // path of the Markdown file
}

// File is the page's installed file name, e.g. "qmail-showctl.8.gz".
func (p Page) File() string { return p.Name + "." + p.Section + ".gz" }

// InstallPath is where the page goes on the target system.
func (p Page) InstallPath() string {
	return "/usr/share/man/man" + p.Section + "/" + p.File()
}

var (
	fileRE  = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._+-]*)\.([1-8])\.md$`)
	titleRE = regexp.MustCompile(`^% (\S+) ([1-8])( |$)`)
	// maxPage bounds what we read: a man page source is a few kilobytes.
	maxPage = int64(1 << 20)
)

// List returns the pages in dir (src/man), sorted by name. README.md is the format's
// description, not a page; any other .md file not named NAME.SECTION.md is an error, so
// a misnamed page is not silently left out of the packages.
func List(dir string) ([]Page, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var pages []Page
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".md") || n == "README.md" {
			continue
		}
		m := fileRE.FindStringSubmatch(n)
		if m == nil {
			return nil, fmt.Errorf("%s: man page sources are named PROGRAM.SECTION.md (section 1-8)", filepath.Join(dir, n))
		}
		pages = append(pages, Page{Name: m[1], Section: m[2], Source: filepath.Join(dir, n)})
	}
	sort.Slice(pages, func(i, j int) bool {
		if pages[i].Name != pages[j].Name {
			return pages[i].Name < pages[j].Name
		}
		return pages[i].Section < pages[j].Section
	})
	return pages, nil
}

// Render reads a page and returns its roff text. The title block must name the page
// and section its file name gives, and the page must have a NAME section: a page that
// man(1) would show under the wrong name, or whatis(1) cannot index, is an error.
func Render(p Page) ([]byte, error) {
	fi, err := os.Stat(p.Source)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxPage {
		return nil, fmt.Errorf("%s: %d bytes is too big for a man page source", p.Source, fi.Size())
	}
	src, err := os.ReadFile(p.Source)
	if err != nil {
		return nil, err
	}
	first, rest, _ := bytes.Cut(src, []byte("\n"))
	m := titleRE.FindSubmatch(first)
	if m == nil {
		return nil, fmt.Errorf("%s:1: want a title block like %q", p.Source,
			"% "+strings.ToUpper(p.Name)+" "+p.Section+` "" "notqmail" "System Manager's Manual"`)
	}
	if !strings.EqualFold(string(m[1]), p.Name) || string(m[2]) != p.Section {
		return nil, fmt.Errorf("%s:1: title block says %s(%s), file name says %s(%s)", p.Source, m[1], m[2], p.Name, p.Section)
	}
	if !bytes.Contains(rest, []byte("\n# NAME\n")) {
		return nil, fmt.Errorf("%s: no \"# NAME\" section", p.Source)
	}
	out := md2man.Render(src)
	if !bytes.Contains(out, []byte("\n.SH NAME\n")) {
		return nil, fmt.Errorf("%s: rendered page has no NAME section", p.Source)
	}
	return out, nil
}

// Gzip compresses reproducibly: no file name and no time stamp in the header.
func Gzip(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// RenderAll renders every page in srcDir into outDir/man<section>/<name>.<section>.gz
// and returns the pages.
func RenderAll(srcDir, outDir string) ([]Page, error) {
	pages, err := List(srcDir)
	if err != nil {
		return nil, err
	}
	for _, p := range pages {
		roff, err := Render(p)
		if err != nil {
			return nil, err
		}
		gz, err := Gzip(roff)
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(outDir, "man"+p.Section)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, p.File()), gz, 0o644); err != nil {
			return nil, err
		}
	}
	return pages, nil
}
