// Package users handles qmail's users/assign and its compiled form users/cdb
// (qmail-users(5)): parsing the assign file, compiling it as qmail-newu does, and the
// lookup qmail-lspawn does before it falls back to qmail-getpw.
//
// users/assign has two kinds of lines, then a line containing a single dot:
//
//	=local:user:uid:gid:homedir:dash:ext:     mail for exactly local
//	+prefix:user:uid:gid:homedir:dash:pre:    mail for any local starting with prefix
//
// users/cdb, byte-compatible with qmail's:
//
//   - an exact line is stored under the key "!" + lowercase(local) + "\x00";
//   - a wildcard line under "!" + lowercase(prefix), with no trailing NUL;
//   - the data is "user\x00uid\x00gid\x00homedir\x00dash\x00ext" (no trailing NUL);
//   - the record with the empty key holds the set of last characters of all wildcard
//     prefixes, in order of first appearance; the lookup only tries a wildcard key whose
//     last character is in that set.
package users

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/notqmail/notqmail/src/cdb"
)

// Assignment is where mail for a local address goes: the arguments qmail-lspawn gives
// qmail-local, and the ids it delivers as.
type Assignment struct {
	User string // account name, passed to qmail-local
	UID  int
	GID  int
	Home string // home directory: qmail-local runs there and reads .qmail files from it
	Dash string // "" or "-": put between "~/.qmail" and Ext
	Ext  string // the extension: selects ~/.qmail<Dash><Ext>
}

// Entry is one line of users/assign.
type Entry struct {
	Wild  bool   // a "+" line: Local is a prefix and Ext the extension's prefix
	Local string // the address's local part, or its prefix for a wildcard
	Assignment
	Line int // 1-based line number in the file, 0 if not from a file
}

// String formats the entry as a users/assign line, without the newline.
func (e Entry) String() string {
	kind := "="
	if e.Wild {
		kind = "+"
	}
	return fmt.Sprintf("%s%s:%s:%d:%d:%s:%s:%s:", kind, e.Local, e.User, e.UID, e.GID, e.Home, e.Dash, e.Ext)
}

// Error is a malformed users/assign or users/cdb; it names the file and, for assign,
// the line.
type Error struct {
	File string
	Line int // 0 when the whole file is at fault
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// maxLine bounds a users/assign line, so a hostile file cannot make us buffer it all.
const maxLine = 64 << 10

// ReadAssign parses users/assign from r, calling fn for every entry in order; name is
// the file name for errors. It stops at the line containing a single "." (anything after
// it is ignored, as in qmail) and fails if that line is missing.
//
// It is stricter than qmail-newu, which silently takes any line not starting with "+"
// as an exact entry and ignores text after the seventh colon: here a line must start
// with "=" or "+", have exactly seven colons (trailing white space after the last is
// allowed), numeric ids, a user name and an absolute home directory.
func ReadAssign(r io.Reader, name string, fn func(Entry) error) error {
	br := bufio.NewReaderSize(r, maxLine)
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return &Error{File: name, Line: n, Msg: fmt.Sprintf("line longer than %d bytes", maxLine)}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("unable to read %s: %w", name, err)
		}
		complete := len(line) > 0 && line[len(line)-1] == '\n'
		text := strings.TrimSuffix(string(line), "\n")
		if strings.TrimRight(text, " \t\r") == "." {
			return nil
		}
		if len(line) == 0 {
			return &Error{File: name, Line: n, Msg: "missing the final line containing a single dot"}
		}
		if !complete {
			return &Error{File: name, Line: n, Msg: "last line is incomplete (no newline) and the final line containing a single dot is missing"}
		}
		e, perr := parseLine(text)
		if perr != "" {
			return &Error{File: name, Line: n, Msg: perr}
		}
		e.Line = n
		if err := fn(e); err != nil {
			return err
		}
	}
}

// ParseAssign parses a whole users/assign.
func ParseAssign(r io.Reader, name string) ([]Entry, error) {
	var es []Entry
	err := ReadAssign(r, name, func(e Entry) error {
		es = append(es, e)
		return nil
	})
	return es, err
}

// parseLine parses one entry line; the string is an error message.
func parseLine(text string) (Entry, string) {
	if strings.IndexByte(text, 0) >= 0 {
		return Entry{}, "contains a NUL byte"
	}
	var e Entry
	switch {
	case text == "":
		return e, "empty line (the file ends with a line containing a single dot)"
	case text[0] == '+':
		e.Wild = true
	case text[0] == '=':
	default:
		return e, fmt.Sprintf("line must start with = or +, not %q", text[0])
	}
	f := strings.Split(text[1:], ":")
	if len(f) != 8 || strings.TrimRight(f[7], " \t\r") != "" {
		return e, fmt.Sprintf("want 7 colon-terminated fields (local:user:uid:gid:homedir:dash:ext:), found %d", len(f)-1)
	}
	e.Local, e.User, e.Home, e.Dash, e.Ext = f[0], f[1], f[4], f[5], f[6]
	if !e.Wild && e.Local == "" {
		return e, "empty local part in an = line"
	}
	if e.User == "" {
		return e, "empty user name"
	}
	var ok bool
	if e.UID, ok = parseID(f[2]); !ok {
		return e, fmt.Sprintf("uid %q is not a number", f[2])
	}
	if e.GID, ok = parseID(f[3]); !ok {
		return e, fmt.Sprintf("gid %q is not a number", f[3])
	}
	if !strings.HasPrefix(e.Home, "/") {
		return e, fmt.Sprintf("home directory %q is not an absolute path", e.Home)
	}
	return e, ""
}

// parseID parses a uid or gid: decimal digits that fit a 32-bit id.
func parseID(s string) (int, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return int(n), err == nil
}

// lowerASCII lowercases A-Z only, as qmail's case_lowerb does.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Key returns the users/cdb key of an entry.
func (e Entry) Key() []byte {
	k := "!" + lowerASCII(e.Local)
	if !e.Wild {
		k += "\x00"
	}
	return []byte(k)
}

// data returns the users/cdb data of an entry.
func (e Entry) data() []byte {
	return []byte(strings.Join([]string{e.User, strconv.Itoa(e.UID), strconv.Itoa(e.GID), e.Home, e.Dash, e.Ext}, "\x00"))
}

// Compile reads users/assign from r (name is for errors) and adds its records to w as
// qmail-newu does, ending with the wildcard-characters record.
//
// One deliberate difference: qmail-newu records a wildcard prefix's last character as
// written, while the lookup compares it lowercased, so in qmail a prefix ending in an
// upper-case letter never matches. Here it is recorded lowercased, so it matches;
// qmail's own lookup reads such a file correctly too.
func Compile(r io.Reader, name string, w *cdb.Writer) error {
	var wildchars []byte
	err := ReadAssign(r, name, func(e Entry) error {
		if e.Wild && e.Local != "" {
			c := lowerASCII(e.Local[len(e.Local)-1:])[0]
			if bytes.IndexByte(wildchars, c) < 0 {
				wildchars = append(wildchars, c)
			}
		}
		return w.Add(e.Key(), e.data())
	})
	if err != nil {
		return err
	}
	return w.Add(nil, wildchars)
}

// NewU compiles the users/assign at assignPath into the users/cdb at cdbPath, atomically
// through cdbPath+".tmp" (qmail-newu). On any error cdbPath is left as it was.
func NewU(assignPath, cdbPath string) error {
	f, err := os.Open(assignPath)
	if err != nil {
		return fmt.Errorf("unable to open %s: %w", assignPath, err)
	}
	defer f.Close()
	return cdb.WriteFile(cdbPath, func(w *cdb.Writer) error {
		return Compile(f, assignPath, w)
	})
}
