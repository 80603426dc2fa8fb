// Package maildir writes and reads maildirs (maildir(5)): reliable delivery through
// tmp/ and new/, and the layout that maildirmake creates.
package maildir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// ReadError is a failure to read the message being delivered (not to write it).
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "unable to read message: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// NoMaildirError says the maildir (or its tmp/ or new/) cannot be reached at all.
type NoMaildirError struct{ Err error }

func (e *NoMaildirError) Error() string { return "unable to reach maildir: " + e.Err.Error() }
func (e *NoMaildirError) Unwrap() error { return e.Err }

var seq atomic.Uint64

// uniqueName is a maildir file name: seconds, then M<microseconds, 6 digits>P<pid>Q<sequence>,
// then the host name, so that two deliveries never pick the same name even within a
// microsecond in one process. Characters that would break the name are escaped as
// the maildir convention asks ('/' as \057, ':' as \072).
func uniqueName(now time.Time, host string) string {
	host = strings.ReplaceAll(host, "/", `\057`)
	host = strings.ReplaceAll(host, ":", `\072`)
	if host == "" {
		host = "localhost"
	}
	return strconv.FormatInt(now.Unix(), 10) + fmt.Sprintf(".M%06d", now.Nanosecond()/1000) +
		"P" + strconv.Itoa(os.Getpid()) + "Q" + strconv.FormatUint(seq.Add(1), 10) + "." + host
}

// Deliver stores a message in the maildir at dir, reliably: it writes head and then
// msg to a new, uniquely named file in tmp/, syncs it, links it into new/ and syncs
// new/ itself, so that once Deliver returns nil the message survives a crash. On any
// error nothing is left behind: the tmp/ file is removed and no file appears in new/.
// It returns the name of the file in new/.
//
// A failure to read msg is a *ReadError; a maildir whose tmp/ or new/ cannot be
// reached is a *NoMaildirError. Every error is temporary for the caller.
func Deliver(dir string, head []byte, msg io.Reader) (string, error) {
	return DeliverSync(dir, head, msg, nil)
}

// DeliverSync is Deliver, with the tmp/ file and the new/ entry made durable by gs
// (see GroupSync) instead of an fsync of each, when gs is not nil: it writes and
// closes the tmp/ file, waits for a syncfs of the maildir's file system, links the
// file into new/ and waits for another. Many deliveries running at once on one file
// system thus share their disk flushes. The guarantee is Deliver's: once it returns
// nil the file and its new/ entry are on disk.
func DeliverSync(dir string, head []byte, msg io.Reader, gs *GroupSync) (string, error) {
	host, _ := os.Hostname()
	tmpDir, newDir := filepath.Join(dir, "tmp"), filepath.Join(dir, "new")
	for _, d := range []string{tmpDir, newDir} {
		if fi, err := os.Stat(d); err != nil {
			return "", &NoMaildirError{Err: err}
		} else if !fi.IsDir() {
			return "", &NoMaildirError{Err: fmt.Errorf("%s is not a directory", d)}
		}
	}

	// One syncfs of new/'s file system; nil: fsyncs. Made before the tmp/ file,
	// since it takes its mark then (GroupSync.syncer).
	var sync func() error
	if gs != nil {
		sync = gs.syncer(newDir)
	}

	var f *os.File
	var name string
	for tries := 0; ; tries++ {
		name = uniqueName(time.Now(), host)
		var err error
		f, err = os.OpenFile(filepath.Join(tmpDir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) || tries >= 100 {
			return "", err
		}
	}
	tmpPath := filepath.Join(tmpDir, name)
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(tmpPath)
		return "", err
	}

	if _, err := f.Write(head); err != nil {
		return fail(err)
	}
	if _, err := io.Copy(f, readErrors{msg}); err != nil {
		return fail(err)
	}
	if sync == nil {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := f.Close(); err != nil { // NFS reports write errors here
		os.Remove(tmpPath)
		return "", err
	}
	if sync != nil {
		// The file's data and inode must be on disk before new/ names it.
		if err := sync(); err != nil {
			os.Remove(tmpPath)
			return "", err
		}
	}

	final, err := publish(tmpPath, newDir, name, host)
	os.Remove(tmpPath)
	if err != nil {
		return "", err
	}
	if sync == nil {
		sync = func() error { return syncDir(newDir) }
	}
	if err := sync(); err != nil {
		// Not known to be on disk: take it back, so the retry is the only copy.
		os.Remove(filepath.Join(newDir, final))
		return "", err
	}
	return final, nil
}

// publish links the finished tmp/ file into new/, under a fresh name if its own is
// somehow taken there. File systems without hard links get a rename, which is just as
// atomic (the name is unique, so nothing is overwritten).
func publish(tmpPath, newDir, name, host string) (string, error) {
	for tries := 0; ; tries++ {
		err := os.Link(tmpPath, filepath.Join(newDir, name))
		if err == nil {
			return name, nil
		}
		switch {
		case errors.Is(err, os.ErrExist) && tries < 100:
			name = uniqueName(time.Now(), host)
		case errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EXDEV):
			if _, serr := os.Lstat(filepath.Join(newDir, name)); serr == nil {
				return "", err
			}
			if rerr := os.Rename(tmpPath, filepath.Join(newDir, name)); rerr != nil {
				return "", rerr
			}
			return name, nil
		default:
			return "", err
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err // EINVAL: the file system cannot sync directories at all
	}
	return nil
}

// readErrors marks errors from the message so they are told apart from write errors.
type readErrors struct{ r io.Reader }

func (r readErrors) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = &ReadError{Err: err}
	}
	return n, err
}
