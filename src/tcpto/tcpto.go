// Package tcpto keeps qmail's record of remote hosts whose SMTP port timed out,
// queue/lock/tcpto, in qmail's format, so qmail-remote skips a host that keeps timing
// out for about an hour instead of waiting timeoutconnect seconds on every message.
//
// The file is 1024 bytes: 64 records of 16 bytes. A record is
//
//	bytes 0-3   IPv4 address
//	byte  4     number of recent timeouts, at most 10 (0: free slot)
//	bytes 8-11  time of the last timeout, seconds since the epoch, little-endian
//
// and the rest zero. Writers hold an exclusive flock on the file. Only IPv4 hosts
// fit the format; IPv6 hosts are not recorded (a different file would be needed, and
// qmail's tools could not read it).
package tcpto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"syscall"
	"time"
)

const (
	// Size is the file's size; records beyond it are never read.
	Size       = 1024
	recordSize = 16
	maxErrors  = 10
)

// Record is one remembered host.
type Record struct {
	Addr   netip.Addr
	Errors int       // recent timeouts, 1..10
	When   time.Time // the last one
}

// File is a tcpto file.
type File struct {
	Path string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Jitter spreads the retry time per process as qmail does ((pid & 31) minutes
	// of 64 seconds); nil means the process id.
	Jitter func() int
}

func (f File) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f File) jitter() int {
	if f.Jitter != nil {
		return f.Jitter()
	}
	return os.Getpid()
}

// locked opens the file for writing, takes the lock and reads the records. A missing
// file is not an error: it means nothing is recorded and nothing will be.
func (f File) locked() (*os.File, []byte, error) {
	fd, err := os.OpenFile(f.Path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if err := syscall.Flock(int(fd.Fd()), syscall.LOCK_EX); err != nil {
		fd.Close()
		return nil, nil, fmt.Errorf("unable to lock %s: %w", f.Path, err)
	}
	buf := make([]byte, Size)
	n, err := fd.ReadAt(buf, 0)
	if err != nil && n == 0 && !errors.Is(err, io.EOF) {
		fd.Close()
		return nil, nil, fmt.Errorf("unable to read %s: %w", f.Path, err)
	}
	return fd, buf[:n-n%recordSize], nil
}

func when(rec []byte) int64 { return int64(binary.LittleEndian.Uint32(rec[8:12])) }

// Blocked reports whether addr timed out at least twice recently, so that this
// attempt should skip it. Errors reading the file count as not blocked, as in qmail.
func (f File) Blocked(addr netip.Addr) bool {
	if !addr.Is4() {
		return false
	}
	fd, buf, err := f.locked()
	if fd == nil || err != nil {
		return false
	}
	fd.Close()
	ip := addr.As4()
	for i := 0; i+recordSize <= len(buf); i += recordSize {
		rec := buf[i : i+recordSize]
		if [4]byte(rec[:4]) != ip {
			continue
		}
		if rec[4] < 2 {
			return false
		}
		hold := int64((60 + f.jitter()&31) << 6)
		return f.now().Unix()-when(rec) < hold
	}
	return false
}

// Note records the result of connecting to addr: timedOut counts one more timeout
// (at most one per two minutes), anything else clears the host's count. The file
// is best effort: failures to update it are ignored, as in qmail.
func (f File) Note(addr netip.Addr, timedOut bool) {
	if !addr.Is4() {
		return
	}
	fd, buf, err := f.locked()
	if fd == nil || err != nil {
		return
	}
	defer fd.Close()
	ip := addr.As4()
	now := f.now().Unix()
	write := func(i int, rec []byte) { fd.WriteAt(rec, int64(i)) }
	for i := 0; i+recordSize <= len(buf); i += recordSize {
		rec := buf[i : i+recordSize]
		if [4]byte(rec[:4]) != ip {
			continue
		}
		if !timedOut {
			if rec[4] != 0 {
				rec[4] = 0
				write(i, rec)
			}
			return
		}
		if rec[4] != 0 && now < 120+when(rec) {
			return
		}
		if rec[4]++; rec[4] > maxErrors {
			rec[4] = maxErrors
		}
		binary.LittleEndian.PutUint32(rec[8:12], uint32(now))
		write(i, rec)
		return
	}
	if !timedOut || len(buf) == 0 {
		return
	}
	// A free slot, or else the one whose host is likeliest reachable again.
	slot := -1
	for i := 0; i+recordSize <= len(buf); i += recordSize {
		if buf[i+4] == 0 {
			slot = i
			break
		}
	}
	if slot < 0 {
		var best int64
		for i := 0; i+recordSize <= len(buf); i += recordSize {
			w := when(buf[i:]) + int64(buf[i+4])<<10
			if slot < 0 || w < best {
				slot, best = i, w
			}
		}
	}
	rec := make([]byte, recordSize)
	copy(rec, ip[:])
	rec[4] = 1
	binary.LittleEndian.PutUint32(rec[8:12], uint32(now))
	write(slot, rec)
}

// Records returns the hosts with recent timeouts, in file order.
func (f File) Records() ([]Record, error) {
	fd, buf, err := f.locked()
	if err != nil {
		return nil, err
	}
	if fd == nil {
		return nil, fmt.Errorf("unable to open %s: %w", f.Path, fs.ErrNotExist)
	}
	fd.Close()
	var out []Record
	for i := 0; i+recordSize <= len(buf); i += recordSize {
		rec := buf[i : i+recordSize]
		if rec[4] == 0 {
			continue
		}
		out = append(out, Record{Addr: netip.AddrFrom4([4]byte(rec[:4])), Errors: int(rec[4]), When: time.Unix(when(rec), 0)})
	}
	return out, nil
}

// Clear forgets every host: the file becomes Size zero bytes (qmail-tcpok).
func (f File) Clear() error {
	fd, err := os.OpenFile(f.Path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer fd.Close()
	if err := syscall.Flock(int(fd.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("unable to lock %s: %w", f.Path, err)
	}
	if _, err := fd.WriteAt(make([]byte, Size), 0); err != nil {
		return fmt.Errorf("unable to clear %s: %w", f.Path, err)
	}
	return fd.Close()
}
