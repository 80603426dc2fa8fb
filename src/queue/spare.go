package queue

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
		if strings.HasPrefix(name, ".") {
			continue // moved aside by qmail-clean, not a spare yet
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

// Recycler turns finished queue files into spares of spare/q (for qmail-clean).
//
// An inode must not be emptied and reused while a name that pointed to it, or another
// file of the same message id, may still come back after a crash: on a file system
// that does not order metadata updates (ext4 without a journal, which itself waits a
// minute before reusing a freed inode for this reason), a removed todo/<id> could
// return pointing to an emptied envelope, or a removed local/<id> could return and
// send a new message that reuses the id to an old message's recipients. So Recycle
// only moves a file aside, to spare/q/.<inode number>, with its contents; Flush, called
// every second or so, makes the file system's state durable (todo/ and syncfs(2),
// which covers qmail-send's removals in directories qmailq cannot open) and then
// truncates the files moved aside before the previous Flush and renames each to
// spare/q/<inode number>. Waiting one Flush more covers what qmail-send removes just
// after qmail-clean's answer (info/<id>).
//
// It keeps spare/q at most Max entries, counting them by readdir at the start and
// every recount operations, and unlinks files beyond that. It is safe for concurrent
// use.
type Recycler struct {
	Q       Queue
	Max     int // default MaxSpares
	mu      sync.Mutex
	count   int
	ops     int
	pending []string // moved aside since the last Flush
	ready   []string // moved aside before the last Flush: spares at the next one
}

// recount is how many Recycle calls pass between two counts of spare/q, which its
// takers shrink behind the Recycler's back.
const recount = 256

// Recycle removes the name p from the queue: when p is the only name of a regular
// file it is moved aside to become a spare at a later Flush, otherwise (or when
// spare/q is full, or anything fails) the name is unlinked. A missing p is not an
// error.
func (r *Recycler) Recycle(p string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ops%recount == 0 {
		r.count = countSpares(r.Q)
	}
	r.ops++
	limit := r.Max
	if limit == 0 {
		limit = MaxSpares
	}
	if r.count < limit {
		if name, ok := r.moveAside(p); ok {
			r.count++
			r.pending = append(r.pending, name)
			return nil
		}
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (r *Recycler) moveAside(p string) (string, bool) {
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Nlink != 1 || int(st.Uid) != os.Geteuid() {
		return "", false
	}
	name := "." + strconv.FormatUint(st.Ino, 10)
	if os.Rename(p, filepath.Join(r.Q.Dir, SpareQ, name)) != nil {
		return "", false
	}
	return name, true
}

// Recover takes up files moved aside by an earlier run that ended before it could
// make spares of them: they become spares at the next Flush.
func (r *Recycler) Recover() {
	f, err := os.Open(filepath.Join(r.Q.Dir, SpareQ))
	if err != nil {
		return
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(1024)
		r.mu.Lock()
		for _, n := range names {
			if strings.HasPrefix(n, ".") {
				r.ready = append(r.ready, n)
			}
		}
		r.mu.Unlock()
		if err != nil || len(names) == 0 {
			return
		}
	}
}

// Flush makes the file system's state durable and then turns the files moved aside
// before the previous Flush into spares: truncated, so that no mail content stays
// behind, and renamed to their inode numbers. A file that is no longer the only name
// of its inode is only unlinked. Calling Flush twice turns every file moved aside
// into a spare.
func (r *Recycler) Flush() {
	r.mu.Lock()
	batch := r.ready
	r.ready, r.pending = r.pending, nil
	r.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	err := syncDir(filepath.Join(r.Q.Dir, "todo"))
	if err == nil {
		err = syncFS(r.Q.Dir)
	}
	if err != nil {
		// Not known to be durable: try again at the next Flush.
		r.mu.Lock()
		r.ready = append(batch, r.ready...)
		r.mu.Unlock()
		return
	}
	dir := filepath.Join(r.Q.Dir, SpareQ)
	for _, name := range batch {
		p := filepath.Join(dir, name)
		if !finishSpare(p, name[1:], dir) {
			os.Remove(p)
		}
	}
}

// finishSpare truncates the file moved aside at p and renames it to spare/q/<ino>.
func finishSpare(p, ino, dir string) bool {
	f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.Mode().IsRegular() || st.Nlink != 1 || strconv.FormatUint(st.Ino, 10) != ino {
		return false
	}
	// Truncate first: a crash before the rename leaves an empty file, never a spare
	// holding mail.
	if f.Truncate(0) != nil {
		return false
	}
	return os.Rename(p, filepath.Join(dir, ino)) == nil
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

// SpareLowWater is how many spares qmail-clean keeps ready in spare/q when it has
// nothing else to do, so that a burst of mail after a start or a quiet spell reuses
// inodes instead of allocating them while a client waits.
const SpareLowWater = 1024

// TopUp creates empty spares in spare/q until it holds low files, at most max of
// them in this call; it returns how many it made. As with a recycled file, a new
// spare gets its name only once it is on disk: the files are created under
// temporary names (".new.*", which takers skip and a restart removes), the file
// system is synced, and then each is renamed to its inode number. It does nothing
// while files moved aside wait for a Flush: then spares are coming anyway.
func (r *Recycler) TopUp(low, max int) int {
	r.mu.Lock()
	if len(r.pending) > 0 || len(r.ready) > 0 {
		r.mu.Unlock()
		return 0
	}
	r.count = countSpares(r.Q)
	need := min(low-r.count, max)
	r.mu.Unlock()
	dir := filepath.Join(r.Q.Dir, SpareQ)
	type made struct {
		tmp string
		ino uint64
	}
	var news []made
	for i := 0; i < need; i++ {
		tmp := filepath.Join(dir, ".new."+strconv.Itoa(os.Getpid())+"."+strconv.Itoa(i))
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
		if err != nil {
			break
		}
		fi, err := f.Stat()
		f.Close()
		st, ok := fi.Sys().(*syscall.Stat_t)
		if err != nil || !ok {
			os.Remove(tmp)
			break
		}
		news = append(news, made{tmp, st.Ino})
	}
	if len(news) == 0 {
		return 0
	}
	if syncFS(r.Q.Dir) != nil {
		for _, m := range news {
			os.Remove(m.tmp)
		}
		return 0
	}
	n := 0
	for _, m := range news {
		if os.Rename(m.tmp, filepath.Join(dir, strconv.FormatUint(m.ino, 10))) != nil {
			os.Remove(m.tmp)
			continue
		}
		n++
	}
	r.mu.Lock()
	r.count += n
	r.mu.Unlock()
	return n
}
