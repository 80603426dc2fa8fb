// Package control reads qmail's control files with qmail's rules.
//
//   - A single-value file (Line, Int) is its first line, trailing white space removed.
//   - A list file (Lines) is every line, trailing white space removed, blank lines
//     skipped; lines starting with '#' are comments in every list file (qmail allows
//     them in badmailfrom, locals, percenthack, qmqpservers, rcpthosts, smtproutes and
//     virtualdomains, which are exactly its list files).
//   - A missing file means the default; many defaults derive from control/me.
//
// Every file a program reads must be listed in Files, so that qmail-showctl knows it:
// reading an unlisted name panics, which the tests catch.
package control

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/notqmail/notqmail/src/home"
)

// Error is a malformed control file: it names the file and the line.
type Error struct {
	File string // path of the file
	Line int    // 1-based line number; 0 when the whole file is at fault
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Line is one line of a list file with its 1-based number, for error messages.
type Line struct {
	Text string
	N    int
}

// Dir is a control directory.
type Dir struct {
	Path string
}

// Open returns the control directory at path.
func Open(path string) Dir { return Dir{Path: path} }

// Default returns $QMAILHOME/control.
func Default() Dir { return Dir{Path: home.Path("control")} }

// File returns the path of a control file.
func (d Dir) File(name string) string { return filepath.Join(d.Path, name) }

func (d Dir) read(name string) ([]byte, bool, error) {
	if _, ok := lookup(name); !ok {
		panic("control: " + name + " is not in control.Files; add it so qmail-showctl knows it")
	}
	b, err := os.ReadFile(d.File(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, &Error{File: d.File(name), Msg: "unable to read: " + errText(err)}
	}
	return b, true, nil
}

func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Line returns the first line of a single-value file with trailing white space
// removed; ok is false when the file does not exist.
func (d Dir) Line(name string) (value string, ok bool, err error) {
	b, ok, err := d.read(name)
	if !ok || err != nil {
		return "", ok, err
	}
	first, _, _ := bytes.Cut(b, []byte("\n"))
	if bytes.IndexByte(first, 0) >= 0 {
		return "", true, &Error{File: d.File(name), Line: 1, Msg: "contains a NUL byte"}
	}
	return strings.TrimRight(string(first), " \t\r"), true, nil
}

// maxText bounds Text: a control file read whole is a few lines of instructions.
const maxText = 64 << 10

// Text returns a whole file with trailing newlines removed, as the shell's $(cat file)
// gives it (qmail's rc passes control/defaultdelivery to qmail-start that way, so it may
// hold several .qmail lines and comments); ok is false when the file does not exist.
func (d Dir) Text(name string) (text string, ok bool, err error) {
	b, ok, err := d.read(name)
	if !ok || err != nil {
		return "", ok, err
	}
	if len(b) > maxText {
		return "", true, &Error{File: d.File(name), Msg: fmt.Sprintf("longer than %d bytes", maxText)}
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return "", true, &Error{File: d.File(name), Line: 1 + bytes.Count(b[:i], []byte("\n")), Msg: "contains a NUL byte"}
	}
	return strings.TrimRight(string(b), "\n"), true, nil
}

// LineOr returns Line(name), or def when the file is missing or empty.
func (d Dir) LineOr(name, def string) (string, error) {
	v, ok, err := d.Line(name)
	if err != nil {
		return "", err
	}
	if !ok || v == "" {
		return def, nil
	}
	return v, nil
}

// Me returns control/me, the host's fully qualified name; ok is false if it is
// missing or empty.
func (d Dir) Me() (string, bool, error) {
	v, ok, err := d.Line("me")
	return v, ok && v != "", err
}

// LineOrMe returns Line(name); when that file is missing or empty it returns control/me,
// and when me is missing too, fallback (qmail's control_rldef with flagme set).
func (d Dir) LineOrMe(name, fallback string) (string, error) {
	v, ok, err := d.Line(name)
	if err != nil {
		return "", err
	}
	if ok && v != "" {
		return v, nil
	}
	me, ok, err := d.Me()
	if err != nil {
		return "", err
	}
	if ok {
		return me, nil
	}
	return fallback, nil
}

// Int returns a single-value file as a non-negative integer, or def when the file is
// missing. Anything but digits (after trailing white space is removed) is an error
// naming the file and line; qmail would silently take a leading number.
func (d Dir) Int(name string, def int) (int, error) {
	v, ok, err := d.Line(name)
	if err != nil || !ok {
		return def, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || strings.HasPrefix(v, "+") {
		return 0, &Error{File: d.File(name), Line: 1, Msg: fmt.Sprintf("not a non-negative number: %q", v)}
	}
	return n, nil
}

// Lines returns the lines of a list file: trailing white space removed, blank lines
// and '#' comments skipped. A missing file gives no lines and no error.
func (d Dir) Lines(name string) ([]Line, error) {
	b, ok, err := d.read(name)
	if !ok || err != nil {
		return nil, err
	}
	var out []Line
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), len(b)+1)
	for n := 1; sc.Scan(); n++ {
		t := strings.TrimRight(sc.Text(), " \t\r")
		if strings.IndexByte(t, 0) >= 0 {
			return nil, &Error{File: d.File(name), Line: n, Msg: "contains a NUL byte"}
		}
		if t == "" || t[0] == '#' {
			continue
		}
		out = append(out, Line{Text: t, N: n})
	}
	return out, sc.Err()
}

// Strings returns the text of Lines(name).
func (d Dir) Strings(name string) ([]string, error) {
	ls, err := d.Lines(name)
	if err != nil {
		return nil, err
	}
	s := make([]string, len(ls))
	for i, l := range ls {
		s[i] = l.Text
	}
	return s, nil
}

// Errorf returns an Error for line n of a control file, for parsers of structured
// files (smtproutes, virtualdomains, ...).
func (d Dir) Errorf(name string, n int, format string, args ...any) error {
	return &Error{File: d.File(name), Line: n, Msg: fmt.Sprintf(format, args...)}
}
