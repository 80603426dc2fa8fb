package send

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// The small queue files qmail-send reads or patches in the hot path (todo/, info/,
// local/, remote/) are opened on bare descriptors: os.OpenFile makes each regular file
// non-blocking, tries to register it with the poller (which Linux refuses for regular
// files) and makes it blocking again, four fcntl and one epoll_ctl calls per open
// that buy nothing for a file read or written once.

// openRaw opens path with flags (O_CLOEXEC added), retrying on EINTR.
func openRaw(path string, flags int) (int, error) {
	for {
		fd, err := syscall.Open(path, flags|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// rawFile is a regular file open on a bare descriptor, read from its start.
//
// The files it is used for do not grow while they are read (todo/ is complete when
// qmail-queue links it there; a channel file is written in full before it is
// scheduled, and only patched in place afterwards), and a regular file's read(2)
// returns fewer bytes than asked only at its end: so a short read is taken as the
// end, saving the read that would return 0.
type rawFile struct {
	fd   int
	path string
}

// openRawFile opens path for reading, or also for writing with rw. With noatime,
// for a file of qmail-send's own (info/, local/, remote/), its reads leave its access
// time alone: the first read after a write would otherwise change it (relatime) and
// dirty the inode again, and on a file system without a journal the next sync of the
// queue writes that inode table block once more, for nothing (qmail-send's cleanup
// looks at the access time of mess/ files only). A file of another owner refuses
// O_NOATIME with EPERM and is opened without it.
func openRawFile(path string, rw, noatime bool) (*rawFile, error) {
	flags := syscall.O_RDONLY
	if rw {
		flags = syscall.O_RDWR
	}
	if noatime {
		fd, err := openRaw(path, flags|syscall.O_NOATIME)
		if err == nil {
			return &rawFile{fd: fd, path: path}, nil
		}
		if !errors.Is(err, syscall.EPERM) {
			return nil, err
		}
	}
	fd, err := openRaw(path, flags)
	if err != nil {
		return nil, err
	}
	return &rawFile{fd: fd, path: path}, nil
}

// Read reads as read(2) does, returning io.EOF at the end of the file.
func (f *rawFile) Read(b []byte) (int, error) {
	if f.fd < 0 {
		return 0, os.ErrClosed
	}
	if len(b) == 0 {
		return 0, nil
	}
	for {
		n, err := syscall.Read(f.fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "read", Path: f.path, Err: err}
		}
		if n == 0 {
			return 0, io.EOF
		}
		// A short read is not taken as the end: only a read of nothing is, so a
		// read cut short (a signal, a network file system) never drops records.
		return n, nil
	}
}

// writeAt writes b at offset off, as pwrite(2) does, without moving the read offset.
func (f *rawFile) writeAt(b []byte, off int64) error {
	if f.fd < 0 {
		return os.ErrClosed
	}
	if err := pwriteAll(f.fd, b, off); err != nil {
		return &os.PathError{Op: "write", Path: f.path, Err: err}
	}
	return nil
}

// pwriteAll writes all of b at off, retrying on EINTR and short writes.
func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := syscall.Pwrite(fd, b, off)
		switch {
		case err == syscall.EINTR:
		case err != nil:
			return err
		case n == 0:
			return io.ErrShortWrite
		default:
			b, off = b[n:], off+int64(n)
		}
	}
	return nil
}

// mtime returns the file's modification time, in seconds.
func (f *rawFile) mtime() (int64, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(f.fd, &st); err != nil {
		return 0, &os.PathError{Op: "fstat", Path: f.path, Err: err}
	}
	return st.Mtim.Sec, nil
}

// Close closes the descriptor; a second Close does nothing.
func (f *rawFile) Close() error {
	if f == nil || f.fd < 0 {
		return nil
	}
	fd := f.fd
	f.fd = -1
	// close(2) must not be retried on EINTR: the descriptor is gone either way.
	if err := syscall.Close(fd); err != nil {
		return &os.PathError{Op: "close", Path: f.path, Err: err}
	}
	return nil
}

// writeAtRaw writes b at offset off of the existing file path, as
// OpenFile(O_WRONLY)+WriteAt+Close would.
func writeAtRaw(path string, b []byte, off int64) error {
	fd, err := openRaw(path, syscall.O_WRONLY)
	if err != nil {
		return err
	}
	err = pwriteAll(fd, b, off)
	if cerr := syscall.Close(fd); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		var pe *os.PathError
		if !errors.As(err, &pe) {
			err = &os.PathError{Op: "write", Path: path, Err: err}
		}
	}
	return err
}
