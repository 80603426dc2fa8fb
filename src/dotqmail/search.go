package dotqmail

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Patrn is qmail's conf-patrn: the mode bits that must not be set on a home directory
// or on a .qmail file (group- and world-writable: 002 forbids world-writable; the home
// check in package local adds its own sticky test).
const Patrn = 0o002

// Error is a temporary failure found while looking for or reading a .qmail file. Its
// text is qmail-local's, ready for the delivery report.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

// SafeExt is the extension as it appears in a .qmail file name: ASCII letters
// lowercased and dots turned into colons, so that an address can never name a file
// such as .qmail-../x.
func SafeExt(ext string) string {
	b := []byte(ext)
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c == '.':
			b[i] = ':'
		}
	}
	return string(b)
}

// Found is the .qmail file that controls an address.
type Found struct {
	Name string // file name within the home directory, such as ".qmail-foo-default"
	Data []byte // its contents
	// ForwardOnly is set when the file has its owner execute bit set: it may then
	// contain forwards only.
	ForwardOnly bool
	// Default is the part of the extension a -default file matched, for $DEFAULT;
	// HasDefault says whether $DEFAULT is set at all.
	Default    string
	HasDefault bool
}

// Search finds the .qmail file in dir that controls the address with the given dash
// and ext (qmail-local's search): .qmail<dash><ext> first, then, from right to left,
// each .qmail<dash><prefix>-default, ending with .qmail<dash>default. ok is false when
// none exists. err is an *Error when a file exists but cannot be used.
//
// Only regular files count; a missing file, a directory, a dangling or looping link
// and a name too long for the file system all mean "not here", as they do in qmail.
func Search(dir, dash, ext string) (f Found, ok bool, err error) {
	safe := SafeExt(ext)
	name := ".qmail" + dash + safe
	if f, ok, err = open(dir, name); ok || err != nil {
		if ok && len(safe) >= 7 && safe[len(safe)-7:] == "default" {
			f.Default, f.HasDefault = ext[len(ext)-7:], true
		}
		return f, ok, err
	}
	for i := len(safe); i >= 0; i-- {
		if i > 0 && safe[i-1] != '-' {
			continue
		}
		if f, ok, err = open(dir, ".qmail"+dash+safe[:i]+"default"); ok || err != nil {
			if ok {
				f.Default, f.HasDefault = ext[i:], true
			}
			return f, ok, err
		}
	}
	return Found{}, false, nil
}

// Exists reports whether .qmail<dash><safeext><suffix> exists in dir, for the -owner
// and -owner-default tests. It follows qmail: any stat failure other than a temporary
// one means "no".
func Exists(dir, dash, ext, suffix string) (bool, error) {
	name := ".qmail" + dash + SafeExt(ext) + suffix
	_, err := os.Stat(filepath.Join(dir, name))
	if err == nil {
		return true, nil
	}
	if IsTemporary(err) {
		return false, &Error{Msg: fmt.Sprintf("Unable to open %s: %s. (#4.3.0)", name, ErrText(err))}
	}
	return false, nil
}

func open(dir, name string) (Found, bool, error) {
	unable := func(err error) error {
		return &Error{Msg: fmt.Sprintf("Unable to open %s: %s. (#4.3.0)", name, ErrText(err))}
	}
	// O_NONBLOCK: a FIFO planted as a .qmail file must not hang the delivery; it is
	// opened, seen not to be a regular file, and ignored.
	fd, err := syscall.Open(filepath.Join(dir, name), syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		if IsTemporary(err) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			return Found{}, false, unable(err)
		}
		return Found{}, false, nil
	}
	file := os.NewFile(uintptr(fd), name)
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return Found{}, false, unable(err)
	}
	if !st.Mode().IsRegular() {
		return Found{}, false, nil
	}
	if st.Mode().Perm()&Patrn != 0 {
		return Found{}, false, &Error{Msg: "Uh-oh: .qmail file is writable. (#4.7.0)"}
	}
	data, err := io.ReadAll(io.LimitReader(file, MaxSize+1))
	if err != nil {
		return Found{}, false, unable(err)
	}
	if len(data) > MaxSize {
		return Found{}, false, &Error{Msg: fmt.Sprintf("Uh-oh: %s is larger than %d bytes. (#4.2.1)", name, MaxSize)}
	}
	return Found{Name: name, Data: data, ForwardOnly: st.Mode().Perm()&0o100 != 0}, true, nil
}

// IsTemporary reports whether a system error is worth retrying: qmail's error_temp
// list (out of memory or file slots, I/O errors, a full disk or quota, a stale NFS
// handle, network trouble, ...). Errors that carry no errno are taken as temporary.
func IsTemporary(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission)
	}
	switch errno {
	case syscall.EINTR, syscall.ENOMEM, syscall.ETXTBSY, syscall.EIO, syscall.ETIMEDOUT,
		syscall.EAGAIN, syscall.EDEADLK, syscall.EBUSY, syscall.ENFILE, syscall.EMFILE,
		syscall.EFBIG, syscall.ENOSPC, syscall.ENETDOWN, syscall.ENETUNREACH,
		syscall.ENETRESET, syscall.ECONNABORTED, syscall.ECONNRESET, syscall.ENOBUFS,
		syscall.ETOOMANYREFS, syscall.ECONNREFUSED, syscall.EHOSTDOWN,
		syscall.EHOSTUNREACH, syscall.EUSERS, syscall.EDQUOT, syscall.ESTALE,
		syscall.ENOLCK:
		return true
	}
	return false
}

// ErrText is an error's system message without the file name, as qmail's error_str
// gives it.
func ErrText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return strings.TrimSpace(err.Error())
}
