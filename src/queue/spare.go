package queue

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// MaxSpares bounds spare/q: qmail-clean unlinks a finished file instead of recycling
// it once spare/q holds this many.
const MaxSpares = 2000

// Spares hands out the empty files of spare/q to a long-running queue writer
// (qmail-queued). Every spare is an empty file owned by the writer's uid and named by
// its own inode number; a name that breaks these rules is unlinked, never used. It is
// safe for concurrent use; concurrent takers race only through rename, which one of
// them wins.
type Spares struct {
	q     Queue
	mu    sync.Mutex
	names []string // candidates from the last readdir, not yet tried
	empty time.Time
}

// NewSpares returns the spares of q's spare/q.
func NewSpares(q Queue) *Spares { return &Spares{q: q} }

// emptyRetry is how long take trusts that spare/q is empty before reading it again,
// so that an empty spare/q costs one readdir per interval, not one per message.
const emptyRetry = 100 * time.Millisecond

func (s *Spares) next() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.names) == 0 {
		if time.Since(s.empty) < emptyRetry {
			return "", false
		}
		f, err := os.Open(filepath.Join(s.q.Dir, SpareQ))
		if err != nil {
			s.empty = time.Now()
			return "", false
		}
		names, _ := f.Readdirnames(512)
		f.Close()
		if len(names) == 0 {
			s.empty = time.Now()
			return "", false
		}
		s.names = names
	}
	n := s.names[len(s.names)-1]
	s.names = s.names[:len(s.names)-1]
	return n, true
}

// take renames a spare to the path dst returns for the spare's inode number and
// returns it opened for writing, with mode 0644 and access and modification times of
// now, so that qmail-send's 36-hour rule for files without todo/ starts afresh. It
// returns ok=false when no usable spare is left (the caller then creates a file), and
// an error only when the rename to dst failed for another reason than a lost race.
func (s *Spares) take(dst func(ino uint64) string) (f *os.File, ino uint64, path string, ok bool, err error) {
	dir := filepath.Join(s.q.Dir, SpareQ)
	for range 64 {
		name, more := s.next()
		if !more {
			return nil, 0, "", false, nil
		}
		p := filepath.Join(dir, name)
		f, ino, usable := openSpare(p, name)
		if f == nil {
			if !usable {
				os.Remove(p)
			}
			continue
		}
		to := dst(ino)
		if rerr := os.Rename(p, to); rerr != nil {
			f.Close()
			if errors.Is(rerr, fs.ErrNotExist) {
				if _, serr := os.Lstat(p); errors.Is(serr, fs.ErrNotExist) {
					continue // another taker won it
				}
			}
			return nil, 0, "", false, rerr
		}
		return f, ino, to, true, nil
	}
	return nil, 0, "", false, nil
}

// openSpare opens spare/q/<name> and prepares it for reuse. It returns a nil file
// with usable=false when the name is not a usable spare (wrong type, owner, link
// count, not empty, or a name that is not its inode number) and should be unlinked,
// and with usable=true when it vanished meanwhile. A spare is never truncated here:
// a non-empty one may be a message that a concurrent taker has just renamed into use.
func openSpare(p, name string) (f *os.File, ino uint64, usable bool) {
	id, err := strconv.ParseUint(name, 10, 64)
	if err != nil || strconv.FormatUint(id, 10) != name {
		return nil, 0, false
	}
	// O_NONBLOCK: a FIFO planted here must not block the open.
	f, err = os.OpenFile(p, os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, errors.Is(err, fs.ErrNotExist)
	}
	fi, err := f.Stat()
	st, isSt := fi.Sys().(*syscall.Stat_t)
	if err != nil || !isSt || !fi.Mode().IsRegular() || st.Ino != id || st.Nlink != 1 || st.Size != 0 || int(st.Uid) != os.Geteuid() {
		f.Close()
		return nil, 0, false
	}
	if fi.Mode().Perm() != 0644 {
		if err := f.Chmod(0644); err != nil {
			f.Close()
			return nil, 0, false
		}
	}
	now := time.Now()
	tv := []syscall.Timeval{syscall.NsecToTimeval(now.UnixNano()), syscall.NsecToTimeval(now.UnixNano())}
	if err := syscall.Futimes(int(f.Fd()), tv); err != nil {
		f.Close()
		return nil, 0, false
	}
	return f, id, true
}

// Recycler turns finished queue files into spares of spare/q (for qmail-clean):
// truncated, so no mail content lingers, and renamed to spare/q/<inode number>. It
// keeps spare/q at most MaxSpares entries, counting them by readdir at the start and
// every recount operations, and unlinks files beyond that. Not safe for concurrent
// use.
type Recycler struct {
	Q     Queue
	Max   int // default MaxSpares
	count int
	ops   int
}

// recount is how many Recycle calls pass between two counts of spare/q, which its
// takers shrink behind the Recycler's back.
const recount = 256

// Recycle removes the name p from the queue: when p is the only name of a regular
// file it is truncated and becomes a spare, otherwise (or when spare/q is full, or
// anything fails) the name is unlinked. A missing p is not an error.
func (r *Recycler) Recycle(p string) error {
	if r.ops%recount == 0 {
		r.count = countSpares(r.Q)
	}
	r.ops++
	limit := r.Max
	if limit == 0 {
		limit = MaxSpares
	}
	if r.count < limit && r.toSpare(p) {
		r.count++
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (r *Recycler) toSpare(p string) bool {
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err = f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.Mode().IsRegular() || st.Nlink != 1 || int(st.Uid) != os.Geteuid() {
		return false
	}
	// Truncate first: a crash before the rename leaves an empty file, never a
	// spare holding mail.
	if err := f.Truncate(0); err != nil {
		return false
	}
	return os.Rename(p, filepath.Join(r.Q.Dir, SpareQ, strconv.FormatUint(st.Ino, 10))) == nil
}

func countSpares(q Queue) int {
	f, err := os.Open(filepath.Join(q.Dir, SpareQ))
	if err != nil {
		return 1 << 30 // no spare/q: never try to rename into it
	}
	defer f.Close()
	n := 0
	for {
		names, err := f.Readdirnames(1024)
		n += len(names)
		if err != nil || len(names) == 0 {
			return n
		}
	}
}
