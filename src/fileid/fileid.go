// Package fileid tells one version of a file from another, so that what a long-running
// program read from a file (users/cdb, a certificate, bin/qmail-queue's build
// information) can be kept until the file changes, at the cost of a stat.
//
// A version is the file's device and inode (a file replaced by a rename is another
// file), its size, and its modification and change times: an edit in place changes
// the times, and a chmod or a new link the change time.
package fileid

import "syscall"

// ID identifies one version of a file. The zero ID is no file's.
type ID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime syscall.Timespec
}

// Of returns the ID of the file st describes.
func Of(st *syscall.Stat_t) ID {
	return ID{uint64(st.Dev), uint64(st.Ino), st.Size, st.Mtim, st.Ctim}
}

// Stat returns the ID of the file at path, following symbolic links.
func Stat(path string) (ID, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return ID{}, err
	}
	return Of(&st), nil
}
