// Package chkpw is qmail-chkpw, a checkpassword program (the interface of
// qmail-popup and of qmail-smtpd's AUTH) that checks passwords against the bcrypt
// hashes in control/passwords, and the file's maintenance for qmail-chkpw-passwd.
//
// control/passwords holds one user a line:
//
//	name:hash
//	name:hash:uid:gid:home
//
// where hash is a bcrypt hash ($2a$, $2b$ or $2y$). With uid, gid and home the user
// is a mail account for qmail-pop3d: qmail-chkpw, run as root, becomes uid:gid and
// changes to home before running its subprogram, as checkpassword does for system
// users. Blank lines and lines starting with '#' are ignored. The file is rewritten
// atomically (a temporary file renamed over it) so a reader never sees half of it.
package chkpw

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/crypto/bcrypt"
)

// Limits on what is read, so a hostile caller or a runaway file cannot grow memory.
const (
	MaxFileSize = 16 << 20 // bytes of control/passwords
	MaxInput    = 512      // bytes on descriptor 3, as checkpassword reads
	MaxUserLen  = 255
	MaxPassLen  = 72 // what bcrypt uses; longer passwords are refused, not cut
)

// Entry is one user of control/passwords.
type Entry struct {
	User string
	Hash string
	// UID, GID and Home are set when the line has them (HasAccount).
	UID, GID   int
	Home       string
	HasAccount bool
}

func (e Entry) line() string {
	l := e.User + ":" + e.Hash
	if e.HasAccount {
		l += ":" + strconv.Itoa(e.UID) + ":" + strconv.Itoa(e.GID) + ":" + e.Home
	}
	return l
}

// ValidUser reports whether name can be stored: not empty, at most MaxUserLen
// bytes, no ':', '#' at the start, white space or control characters.
func ValidUser(name string) error {
	if name == "" || len(name) > MaxUserLen {
		return fmt.Errorf("user name must be 1 to %d bytes", MaxUserLen)
	}
	if name[0] == '#' {
		return errors.New("user name must not start with #")
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c == ':' || c == 0x7f {
			return fmt.Errorf("user name %q must not contain ':', white space or control characters", name)
		}
	}
	return nil
}

// Parse reads a passwords file. A malformed line is an error naming its number:
// a half-understood password file must not let anyone in.
func Parse(r io.Reader, name string) ([]Entry, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, MaxFileSize)
	}
	var out []Entry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, MaxFileSize)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimRight(sc.Text(), " \t\r")
		if l == "" || l[0] == '#' {
			continue
		}
		f := strings.Split(l, ":")
		bad := func(why string) error { return fmt.Errorf("%s:%d: %s", name, n, why) }
		if len(f) != 2 && len(f) != 5 {
			return nil, bad("want name:hash or name:hash:uid:gid:home")
		}
		e := Entry{User: f[0], Hash: f[1]}
		if err := ValidUser(e.User); err != nil {
			return nil, bad(err.Error())
		}
		if _, err := bcrypt.Cost([]byte(e.Hash)); err != nil {
			return nil, bad("not a bcrypt hash")
		}
		if len(f) == 5 {
			e.HasAccount = true
			if e.UID, err = strconv.Atoi(f[2]); err != nil || e.UID < 0 {
				return nil, bad("uid is not a number")
			}
			if e.GID, err = strconv.Atoi(f[3]); err != nil || e.GID < 0 {
				return nil, bad("gid is not a number")
			}
			if e.Home = f[4]; !strings.HasPrefix(e.Home, "/") {
				return nil, bad("home must be an absolute path")
			}
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// ReadFile reads a passwords file; a missing file has no users.
func ReadFile(path string) ([]Entry, error) {
	entries, _, err := readFile(path)
	return entries, err
}

// readFile is ReadFile that also says whether only root can change the file that
// was read: owned by root and writable by no group or others.
func readFile(path string) (entries []Entry, rootOnly bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		st, ok := fi.Sys().(*syscall.Stat_t)
		rootOnly = ok && st.Uid == 0 && fi.Mode().Perm()&0o022 == 0
	}
	entries, err = Parse(f, path)
	return entries, rootOnly, err
}

// dummyHash is compared against when the user does not exist, so that a missing
// user takes as long as a wrong password and names cannot be probed by timing.
var dummyHash = []byte("$2a$10$V0ASIqsxbc8MeTzdP5H/punFp1ye2CnYXJrdLZpRGGySsT7Px2YZe")

// decoy is the hash compared against when the answer is no whatever the password
// is: the user's own, else another user's in the file, so that it costs what the
// file's hashes cost (bcrypt's cost varies: htpasswd -B makes cost 5, other tools
// 12), else dummyHash.
func decoy(entries []Entry, found *Entry) []byte {
	switch {
	case found != nil:
		return []byte(found.Hash)
	case len(entries) > 0:
		return []byte(entries[0].Hash)
	}
	return dummyHash
}

// Verify checks user and password against entries; it returns the entry on
// success and nil otherwise.
func Verify(entries []Entry, user, pass string) *Entry {
	var found *Entry
	for i := range entries {
		if entries[i].User == user {
			found = &entries[i]
			break
		}
	}
	if found == nil || len(pass) > MaxPassLen {
		bcrypt.CompareHashAndPassword(decoy(entries, found), []byte(pass[:min(len(pass), MaxPassLen)]))
		return nil
	}
	if bcrypt.CompareHashAndPassword([]byte(found.Hash), []byte(pass)) != nil {
		return nil
	}
	return found
}

// Hash makes the bcrypt hash of a new password.
func Hash(pass string, cost int) (string, error) {
	if pass == "" {
		return "", errors.New("empty password")
	}
	if len(pass) > MaxPassLen {
		return "", fmt.Errorf("password longer than %d bytes", MaxPassLen)
	}
	if strings.ContainsAny(pass, "\x00\n") {
		return "", errors.New("password contains NUL or newline")
	}
	b, err := bcrypt.GenerateFromPassword([]byte(pass), cost)
	return string(b), err
}

// ParseInput splits checkpassword's descriptor 3: user NUL password NUL and an
// optional timestamp NUL.
func ParseInput(b []byte) (user, pass string, err error) {
	f := bytes.SplitN(b, []byte{0}, 3)
	if len(f) < 3 {
		return "", "", errors.New("input is not user\\0password\\0")
	}
	if len(f[0]) == 0 {
		return "", "", errors.New("empty user name")
	}
	return string(f[0]), string(f[1]), nil
}
