// Package patches overlays a site's patches on the source tree: it reads
// patches/series (quilt's order and syntax), applies the patches to a scratch copy of
// the tree with git apply and GNU patch, classifies each one (clean, offset or fuzz,
// merged by a 3-way merge, already contained upstream, conflicting), runs the patched
// copy's tests, and only then builds packages from the copy with a site version suffix.
// It also keeps a quilt-like scratch workspace for writing and refreshing patches, and
// checks a series against a new source version.
package patches

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Dir is the patch directory under the source root.
const Dir = "patches"

// Limits on hostile input: a series or patch larger than this is refused rather than
// read into memory.
const (
	maxSeries    = 1 << 20
	maxPatch     = 64 << 20
	maxSeriesLen = 10000
)

// Entry is one line of the series: a patch file under patches/ and its strip level.
type Entry struct {
	Name  string // path relative to patches/, slash-separated
	Strip int    // -pN; quilt's default is 1
	Line  int    // line number in the series, for messages
}

// Series is patches/series parsed.
type Series struct {
	Entries []Entry
	// Revision is N in the site suffix "+siteN", from a "# site-revision: N" comment;
	// 0 when the series does not say.
	Revision int
}

var (
	revisionRE = regexp.MustCompile(`^#\s*site-revision:\s*(\S+)\s*$`)
	subjectTag = regexp.MustCompile(`^\[[^]]*\]`) // "[PATCH 1/2]"
)

// ParseSeries parses a series file: one patch per line with an optional -pN, comments
// from "#" to the end of the line, blank lines ignored, as quilt reads it. Names must
// stay inside the patch directory.
func ParseSeries(b []byte) (Series, error) {
	var s Series
	if len(b) > maxSeries {
		return s, fmt.Errorf("series: %d bytes, more than the %d allowed", len(b), maxSeries)
	}
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxSeries)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if m := revisionRE.FindStringSubmatch(line); m != nil {
			r, err := strconv.Atoi(m[1])
			if err != nil || r < 1 || r > 1<<30 {
				return s, fmt.Errorf("series line %d: site-revision %q: want a number from 1", n, m[1])
			}
			s.Revision = r
			continue
		}
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		e := Entry{Name: f[0], Strip: 1, Line: n}
		if err := checkName(e.Name); err != nil {
			return s, fmt.Errorf("series line %d: %v", n, err)
		}
		for _, opt := range f[1:] {
			if !strings.HasPrefix(opt, "-p") {
				return s, fmt.Errorf("series line %d: option %q: only -pN is supported", n, opt)
			}
			p, err := strconv.Atoi(opt[2:])
			if err != nil || p < 0 || p > 32 {
				return s, fmt.Errorf("series line %d: option %q: want -p0 to -p32", n, opt)
			}
			e.Strip = p
		}
		if prev, dup := seen[e.Name]; dup {
			return s, fmt.Errorf("series line %d: %s is already listed on line %d", n, e.Name, prev)
		}
		seen[e.Name] = n
		s.Entries = append(s.Entries, e)
		if len(s.Entries) > maxSeriesLen {
			return s, fmt.Errorf("series: more than %d patches", maxSeriesLen)
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("series: %v", err)
	}
	return s, nil
}

// checkName refuses patch names that would leave the patch directory or that the
// series syntax cannot carry.
func checkName(name string) error {
	switch {
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("patch %q: absolute names are not allowed", name)
	case path.Clean(name) != name || name == "." || strings.HasPrefix(name, "../") || name == "..":
		return fmt.Errorf("patch %q: want a plain relative name inside %s/", name, Dir)
	case name == "series" || name == "README.md":
		return fmt.Errorf("patch %q: that name is the overlay's own file", name)
	}
	for _, r := range name {
		if r < 0x21 || r == 0x7f {
			return fmt.Errorf("patch %q: control characters and spaces are not allowed", name)
		}
	}
	return nil
}

// ReadSeries reads root/patches/series; a missing file is an empty series.
func ReadSeries(root string) (Series, error) {
	b, err := readLimited(filepath.Join(root, Dir, "series"), maxSeries)
	if os.IsNotExist(err) {
		return Series{}, nil
	}
	if err != nil {
		return Series{}, err
	}
	return ParseSeries(b)
}

// Patch is a patch file as read from disk.
type Patch struct {
	Entry
	Path        string // on disk
	Data        []byte
	SHA256      string
	Description string // first line of the description header, if any
	Files       []FileHunks
}

// FileHunks names the hunks a patch has for one file, for reports.
type FileHunks struct {
	File   string   // path as the patch names it, after stripping
	Hunks  []string // "@@ -40,7 +40,8 @@" headers in order
	Binary bool
}

// Empty says whether the patch changes nothing (a new patch not yet refreshed).
func (p Patch) Empty() bool { return len(p.Files) == 0 }

// LoadPatch reads and parses one series entry from dir (root/patches).
func LoadPatch(dir string, e Entry) (Patch, error) {
	// Absolute, because the tools run in the scratch tree, not here.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Patch{Entry: e}, err
	}
	p := Patch{Entry: e, Path: filepath.Join(dir, filepath.FromSlash(e.Name))}
	b, err := readLimited(p.Path, maxPatch)
	if err != nil {
		return p, fmt.Errorf("patch %s (series line %d): %v", e.Name, e.Line, err)
	}
	p.Data = b
	h := sha256.Sum256(b)
	p.SHA256 = hex.EncodeToString(h[:])
	p.Description, p.Files = parsePatch(b, e.Strip)
	return p, nil
}

func readLimited(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d allowed", p, st.Size(), limit)
	}
	b := make([]byte, st.Size())
	n, err := f.ReadAt(b, 0)
	if int64(n) == st.Size() {
		return b, nil
	}
	return nil, fmt.Errorf("%s: %v", p, err)
}

// parsePatch reads what the reports need from a patch: the description's first line
// and the files and hunk headers. Applying is left to git apply and GNU patch.
func parsePatch(b []byte, strip int) (string, []FileHunks) {
	var desc string
	var files []FileHunks
	inHeader := true
	gitHeader := false // after "diff --git", before its first hunk
	var cur *FileHunks
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		l = strings.TrimSuffix(l, "\r")
		switch {
		case strings.HasPrefix(l, "diff --git "):
			inHeader, gitHeader = false, true
			files = append(files, FileHunks{File: gitDiffName(l, strip)})
			cur = &files[len(files)-1]
		case strings.HasPrefix(l, "+++ ") && i > 0 && strings.HasPrefix(lines[i-1], "--- "):
			inHeader = false
			name := stripPath(strings.TrimPrefix(l, "+++ "), strip)
			if name == "" {
				// A deletion: the old name is the file.
				name = stripPath(strings.TrimPrefix(strings.TrimSuffix(lines[i-1], "\r"), "--- "), strip)
			}
			if gitHeader {
				gitHeader = false
				if name != "" {
					cur.File = name
				}
				break
			}
			files = append(files, FileHunks{File: name})
			cur = &files[len(files)-1]
		case strings.HasPrefix(l, "@@ ") && cur != nil:
			gitHeader = false
			if j := strings.Index(l[3:], " @@"); j >= 0 {
				cur.Hunks = append(cur.Hunks, l[:3+j+3])
			} else {
				cur.Hunks = append(cur.Hunks, l)
			}
		case strings.HasPrefix(l, "GIT binary patch") && cur != nil:
			cur.Binary = true
		case inHeader && desc == "":
			t := strings.TrimSpace(l)
			switch {
			case strings.HasPrefix(t, "Subject:"):
				desc = strings.TrimSpace(strings.TrimPrefix(t, "Subject:"))
				desc = strings.TrimSpace(subjectTag.ReplaceAllString(desc, ""))
			case t == "", strings.HasPrefix(t, "From "), strings.HasPrefix(t, "From:"),
				strings.HasPrefix(t, "Date:"), strings.HasPrefix(t, "Index:"), strings.HasPrefix(t, "====="):
			default:
				desc = t
			}
		}
	}
	if len(desc) > 200 {
		desc = desc[:200]
	}
	return desc, files
}

func gitDiffName(l string, strip int) string {
	f := strings.Fields(strings.TrimPrefix(l, "diff --git "))
	if len(f) < 2 {
		return ""
	}
	return stripPath(f[len(f)-1], strip)
}

// stripPath removes a timestamp after a tab and strip leading components, as -pN does.
func stripPath(s string, strip int) string {
	if i := strings.IndexByte(s, '\t'); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	if s == "/dev/null" {
		return ""
	}
	for n := 0; n < strip; n++ {
		i := strings.IndexByte(s, '/')
		if i < 0 {
			break
		}
		s = s[i+1:]
	}
	return s
}
