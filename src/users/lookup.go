package users

import (
	"bytes"
	"errors"
	"io/fs"
	"strconv"
	"strings"

	"github.com/notqmail/notqmail/src/cdb"
)

// Lookup finds the assignment for a local part in the users/cdb at cdbPath, exactly as
// qmail-lspawn does before it falls back to qmail-getpw:
//
//  1. local is lowercased (A-Z only) for matching; the extension keeps local's case.
//  2. An exact ("=") entry for local wins.
//  3. Otherwise the longest wildcard ("+") prefix of local wins, the whole of local
//     included, down to the empty prefix. The result's Ext is the entry's ext followed
//     by the rest of local after the prefix: "+joe-:joe:...:-:" looked up as
//     "joe-List" gives Dash "-" and Ext "List".
//
// local is the recipient address without its last "@" and domain. ok is false when
// nothing matches or users/cdb does not exist; the caller then asks qmail-getpw. An
// error means users/cdb is unreadable or damaged; qmail-lspawn defers the delivery
// ("Trouble reading users/cdb").
//
// The returned UID may be 0; qmail-lspawn refuses to deliver as root.
func Lookup(cdbPath, local string) (Assignment, bool, error) {
	r, err := cdb.Open(cdbPath)
	if errors.Is(err, fs.ErrNotExist) {
		return Assignment{}, false, nil
	}
	if err != nil {
		return Assignment{}, false, &Error{File: cdbPath, Msg: err.Error()}
	}
	defer r.Close()
	return LookupIn(r, cdbPath, local)
}

// LookupIn is Lookup on an open users/cdb; name is its path for errors.
func LookupIn(r *cdb.Reader, name, local string) (Assignment, bool, error) {
	if strings.IndexByte(local, 0) >= 0 {
		// qmail's local parts are C strings; no entry can match one with a NUL.
		return Assignment{}, false, nil
	}
	fail := func(msg string) (Assignment, bool, error) {
		return Assignment{}, false, &Error{File: name, Msg: msg}
	}
	wildchars, ok, err := r.Get(nil)
	if err != nil {
		return fail(err.Error())
	}
	if !ok {
		// qmail-newu always writes this record; without it the file is not a users/cdb.
		return fail("no wildcard-characters record (empty key); rebuild it with qmail-newu")
	}
	key := []byte("!" + lowerASCII(local) + "\x00")
	// i is the length of the key tried: first the exact key with its NUL, then the
	// wildcard keys from the whole local part down to "!".
	for i := len(key); i >= 1; i-- {
		wild := i < len(key)
		if wild && i > 1 && bytes.IndexByte(wildchars, key[i-1]) < 0 {
			continue
		}
		data, ok, err := r.Get(key[:i])
		if err != nil {
			return fail(err.Error())
		}
		if !ok {
			continue
		}
		a, perr := parseData(data)
		if perr != "" {
			return fail("bad record for " + strconv.Quote(string(key[:i])) + ": " + perr)
		}
		if wild {
			a.Ext += local[i-1:]
		}
		return a, true, nil
	}
	return Assignment{}, false, nil
}

// parseData splits a users/cdb record's data; the string is an error message.
func parseData(data []byte) (Assignment, string) {
	f := strings.SplitN(string(data), "\x00", 6)
	if len(f) != 6 {
		return Assignment{}, "fewer than 6 fields"
	}
	if strings.IndexByte(f[5], 0) >= 0 {
		return Assignment{}, "more than 6 fields"
	}
	uid, ok := parseID(f[1])
	if !ok {
		return Assignment{}, "uid " + strconv.Quote(f[1]) + " is not a number"
	}
	gid, ok := parseID(f[2])
	if !ok {
		return Assignment{}, "gid " + strconv.Quote(f[2]) + " is not a number"
	}
	return Assignment{User: f[0], UID: uid, GID: gid, Home: f[3], Dash: f[4], Ext: f[5]}, ""
}
