// Package getpw is qmail-getpw: it finds the account that controls a local address
// through the password database, for qmail-lspawn when users/cdb has no entry.
//
// The rules are qmail-getpw's. For local "joe-foo-bar" the candidate user names are
// the whole local part and then each prefix ending before a '-' (conf-break), longest
// first: "joe-foo-bar", "joe-foo", "joe". A candidate is lowercased and must be
// shorter than 32 bytes; the account found must have a nonzero uid and own its home
// directory. The first that qualifies takes the address, with the rest as its
// extension. When none does, the alias user takes it with the whole local part as
// the extension.
//
// In sandbox mode (see package home) the password database is never consulted: every
// local part goes to the alias user (the sandbox owner, home QMAILHOME/alias), and
// real accounts come from users/assign only.
package getpw

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"github.com/notqmail/notqmail/src/dotqmail"
	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/ids"
)

// Break is qmail's conf-break: the character between a user name and its extension.
const Break = '-'

// MaxUserLen bounds candidate user names: they must be shorter than this.
const MaxUserLen = 32

// Exit codes qmail-lspawn understands from qmail-getpw (qmail's qlx.h).
const (
	ExitUsage   = 100 // no local part given
	ExitNFS     = 115 // QLX_NFS: a home directory could not be checked; temporary
	ExitNoAlias = 116 // QLX_NOALIAS: no alias user; temporary
	ExitSys     = 118 // QLX_SYS: the password database failed; temporary
)

// Account is a password database entry.
type Account struct {
	Name string
	UID  int
	GID  int
	Home string
}

// Passwd looks an account up by name; ok is false when there is none.
type Passwd func(name string) (a Account, ok bool, err error)

// Entry is qmail-getpw's answer.
type Entry struct {
	User string
	UID  int
	GID  int
	Home string
	Dash string // "" for the bare user, "-" when there is an extension
	Ext  string
}

// Bytes is the answer as qmail-getpw prints it: user, uid, gid, home, dash and ext,
// each followed by a NUL.
func (e Entry) Bytes() []byte {
	var b []byte
	for _, f := range []string{e.User, strconv.Itoa(e.UID), strconv.Itoa(e.GID), e.Home, e.Dash, e.Ext} {
		b = append(b, f...)
		b = append(b, 0)
	}
	return b
}

// Error is a lookup failure with qmail-getpw's exit code.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Lookup finds the account for local in pw, falling back to the account alias.
func Lookup(local string, pw Passwd, alias Passwd) (Entry, error) {
	for pos := len(local); pos >= 0; pos-- {
		if pos == len(local) || local[pos] == Break {
			if pos < MaxUserLen {
				e, ok, err := candidate(local, pos, pw)
				if err != nil || ok {
					return e, err
				}
			}
		}
	}
	a, ok, err := alias(ids.Alias)
	if err != nil {
		return Entry{}, &Error{Code: ExitSys, Msg: err.Error()}
	}
	if !ok {
		return Entry{}, &Error{Code: ExitNoAlias, Msg: "unable to find the alias user"}
	}
	return Entry{User: a.Name, UID: a.UID, GID: a.GID, Home: a.Home, Dash: "-", Ext: local}, nil
}

func candidate(local string, pos int, pw Passwd) (Entry, bool, error) {
	name := lower(local[:pos])
	a, ok, err := pw(name)
	if err != nil {
		return Entry{}, false, &Error{Code: ExitSys, Msg: err.Error()}
	}
	if !ok || a.UID == 0 {
		return Entry{}, false, nil
	}
	fi, err := os.Stat(a.Home)
	if err != nil {
		if dotqmail.IsTemporary(err) {
			return Entry{}, false, &Error{Code: ExitNFS, Msg: fmt.Sprintf("unable to stat %s: %v", a.Home, err)}
		}
		return Entry{}, false, nil
	}
	st, isUnix := fi.Sys().(*syscall.Stat_t)
	if !isUnix || int(st.Uid) != a.UID {
		return Entry{}, false, nil
	}
	e := Entry{User: a.Name, UID: a.UID, GID: a.GID, Home: a.Home}
	if pos < len(local) {
		e.Dash, e.Ext = "-", local[pos+1:]
	}
	return e, true, nil
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// System looks accounts up in the system's password database.
func System(name string) (Account, bool, error) {
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return Account{}, false, nil
		}
		return Account{}, false, err
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return Account{}, false, fmt.Errorf("user %s has non-numeric ids %s:%s", name, u.Uid, u.Gid)
	}
	return Account{Name: u.Username, UID: uid, GID: gid, Home: u.HomeDir}, true, nil
}

// None is a password database without accounts: sandbox mode's.
func None(string) (Account, bool, error) { return Account{}, false, nil }

// QmailAlias looks the alias user up as package ids does (the sandbox owner with home
// QMAILHOME/alias in sandbox mode).
func QmailAlias(name string) (Account, bool, error) {
	a, err := ids.User(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return Account{}, false, nil
		}
		return Account{}, false, err
	}
	return Account{Name: a.Name, UID: a.UID, GID: a.GID, Home: a.Home}, true, nil
}

// Default is qmail-getpw as installed: the system password database, or none at all
// in sandbox mode.
func Default(local string) (Entry, error) {
	pw := System
	if home.InSandbox() {
		pw = None
	}
	return Lookup(local, pw, QmailAlias)
}
