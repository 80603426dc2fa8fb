// Package mbox appends messages to mbox files (mbox(5)) the way qmail-local does: under
// an exclusive lock, with ">From " quoting, a blank line after each message, an fsync,
// and the file truncated back to its old length if anything goes wrong.
package mbox

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/notqmail/notqmail/src/dotqmail"
)

// LockTimeout is how long Deliver waits for another process's lock (qmail: 30 s).
const LockTimeout = 30 * time.Second

// Error is a failed delivery, with qmail-local's report text. Every Error is
// temporary: the message is left for a retry and the mbox as it was.
type Error struct {
	Msg string
	Err error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// Deliver appends head (the "From " line and any header lines the caller adds) and
// then msg, quoted, to the mbox at path, creating it with mode 0600 if need be.
func Deliver(path string, head []byte, msg io.Reader) error {
	return deliver(path, head, msg, LockTimeout)
}

func deliver(path string, head []byte, msg io.Reader, lockWait time.Duration) error {
	// O_NONBLOCK: a FIFO without a reader fails at once instead of hanging.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return &Error{Msg: fmt.Sprintf("Unable to open %s: %s. (#4.2.1)", path, dotqmail.ErrText(err)), Err: err}
	}
	defer f.Close()

	locked := true
	if err := Lock(f, lockWait); err != nil {
		if errors.Is(err, errLockTimeout) {
			return &Error{Msg: "File has been locked for 30 seconds straight. (#4.3.0)", Err: err}
		}
		// A file system without locks: deliver anyway, as qmail does, but then the
		// file cannot safely be truncated back by us.
		locked = false
	}
	pos, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return &Error{Msg: fmt.Sprintf("Unable to write %s: %s. (#4.3.0)", path, dotqmail.ErrText(err)), Err: err}
	}
	undo := func() {
		if locked {
			f.Truncate(pos)
		}
	}

	w := bufio.NewWriterSize(f, 64*1024)
	q := NewQuoter(w)
	var rerr error
	_, err = w.Write(head)
	if err == nil {
		_, err = io.Copy(q, readerFunc(func(p []byte) (int, error) {
			n, e := msg.Read(p)
			if e != nil && e != io.EOF {
				rerr = e
			}
			return n, e
		}))
	}
	if rerr != nil {
		undo()
		return &Error{Msg: fmt.Sprintf("Unable to read message: %s. (#4.3.0)", dotqmail.ErrText(rerr)), Err: rerr}
	}
	if err == nil {
		err = q.Finish()
	}
	if err == nil {
		err = w.WriteByte('\n')
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
		if err != nil && errors.Is(err, syscall.EINVAL) {
			// Devices such as /dev/null cannot be synced, and need not be.
			if fi, serr := f.Stat(); serr == nil && !fi.Mode().IsRegular() {
				err = nil
			}
		}
	}
	if err != nil {
		undo()
		return &Error{Msg: fmt.Sprintf("Unable to write %s: %s. (#4.3.0)", path, dotqmail.ErrText(err)), Err: err}
	}
	return nil
}

type readerFunc func([]byte) (int, error)

func (r readerFunc) Read(p []byte) (int, error) { return r(p) }

var errLockTimeout = errors.New("lock wait timed out")

// Lock takes an exclusive flock and an exclusive fcntl lock on f, so that mail readers
// using either kind see the file locked. With wait > 0 it gives up after that long;
// with wait 0 it waits as long as it takes. An error other than the timeout means
// the file system does not lock (and no lock is held).
func Lock(f *os.File, wait time.Duration) error {
	fd := int(f.Fd())
	deadline := time.Now().Add(wait)
	try := func(lock func(block bool) error) error {
		if wait == 0 {
			for {
				if err := lock(true); !errors.Is(err, syscall.EINTR) {
					return err
				}
			}
		}
		for delay := time.Millisecond; ; delay = min(delay*2, 250*time.Millisecond) {
			err := lock(false)
			if err == nil {
				return nil
			}
			if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EAGAIN) &&
				!errors.Is(err, syscall.EACCES) && !errors.Is(err, syscall.EINTR) {
				return err
			}
			if time.Now().After(deadline) {
				return errLockTimeout
			}
			time.Sleep(delay)
		}
	}
	if err := try(func(block bool) error {
		how := syscall.LOCK_EX
		if !block {
			how |= syscall.LOCK_NB
		}
		return syscall.Flock(fd, how)
	}); err != nil {
		return err
	}
	err := try(func(block bool) error {
		cmd := syscall.F_SETLK
		if block {
			cmd = syscall.F_SETLKW
		}
		return syscall.FcntlFlock(uintptr(fd), cmd, &syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart})
	})
	if err != nil {
		syscall.Flock(fd, syscall.LOCK_UN)
	}
	return err
}

// FromLine is the "From " line that starts a message in an mbox: the envelope sender
// with blanks turned into '-' (MAILER-DAEMON for the empty sender) and the time in
// asctime form, UTC, as qmail's myctime writes it.
func FromLine(sender string, t time.Time) string {
	s := []byte(sender)
	for i, c := range s {
		if c == ' ' || c == '\t' || c == '\n' {
			s[i] = '-'
		}
	}
	if len(s) == 0 {
		s = []byte("MAILER-DAEMON")
	}
	return "From " + string(s) + " " + Ctime(t)
}

// Ctime formats t (in UTC) as qmail's myctime does: "Sun Nov 22 01:02:03 2026\n".
func Ctime(t time.Time) string {
	return t.UTC().Format("Mon Jan 02 15:04:05 2006") + "\n"
}
