package chkpw

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Update changes the passwords file at path under an exclusive lock (path.lock),
// so two runs of qmail-chkpw-passwd cannot lose each other's change: change gets
// the current entries and returns the new ones. The new file replaces the old one
// by rename after it is synced, keeping the old file's mode and owner; a new file
// is owned by owner (uid, gid), unless those are -1, and is mode 0640 when it is
// made for a group (the group that must read it), else 0600.
func Update(path string, ownerUID, ownerGID int, change func([]Entry) ([]Entry, error)) error {
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	entries, err := ReadFile(path)
	if err != nil {
		return err
	}
	entries, err = change(entries)
	if err != nil {
		return err
	}
	mode, uid, gid := os.FileMode(0o600), ownerUID, ownerGID
	if ownerUID >= 0 && ownerGID >= 0 {
		mode = 0o640
	}
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(e.line() + "\n")
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".passwords.tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if uid >= 0 && os.Geteuid() == 0 {
		if err := tmp.Chown(uid, gid); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ErrNoUser is a change to a user the file does not have.
var ErrNoUser = errors.New("no such user")

// Set adds the user or changes their hash, keeping an existing account part
// unless account is given.
func Set(entries []Entry, e Entry, keepAccount bool) []Entry {
	for i := range entries {
		if entries[i].User == e.User {
			if keepAccount && !e.HasAccount {
				e.UID, e.GID, e.Home, e.HasAccount = entries[i].UID, entries[i].GID, entries[i].Home, entries[i].HasAccount
			}
			entries[i] = e
			return entries
		}
	}
	entries = append(entries, e)
	sort.SliceStable(entries, func(a, b int) bool { return entries[a].User < entries[b].User })
	return entries
}

// Delete removes the user.
func Delete(entries []Entry, user string) ([]Entry, error) {
	for i := range entries {
		if entries[i].User == user {
			return append(entries[:i], entries[i+1:]...), nil
		}
	}
	return nil, fmt.Errorf("%s: %w", user, ErrNoUser)
}
