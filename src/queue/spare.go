package queue

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// MaxSpares is how many spares a pool (spare/q, spare/s) keeps while mail is quiet:
// past it, spares are unlinked in quiet spells, TrimPerTick a second. A spare that a
// removal made keeps its old blocks, so in a quiet spell spare/q holds about the space
// of the last 2048 messages (mess/ and intd/ each).
const MaxSpares = 4096

// BurstSpares bounds a pool while mail flows, as long as the file system has room
// (SpareRoom). A drain of a backlog finishes far more files in a row than MaxSpares,
// and freeing each one costs the device: on a file system mounted with discard,
// every unlink that frees blocks waits for a discard request. Kept as spares, the
// files cost nothing until a quiet spell, and the next burst of mail reuses them.
// The pool then holds at most the space the queue itself held at its peak. Past
// BurstSpares, or when the file system is short of room, files are unlinked as
// qmail does.
const BurstSpares = 1 << 18

// TrimPerTick is how many spares past MaxSpares a pool unlinks per second of quiet.
const TrimPerTick = 256

// SpareRoom tells whether the file system holding Dir has room for spares past
// MaxSpares: a tenth of its blocks and of its inodes free for unprivileged use.
// It asks statfs(2) at most once a second. It is safe for concurrent use.
type SpareRoom struct {
	Dir string

	mu     sync.Mutex
	at     time.Time // of the last statfs; zero: never
	ok     bool
	statfs func(string, *syscall.Statfs_t) error // syscall.Statfs; tests replace it
}

// OK reports whether there is room, as of the last statfs (at most a second ago).
func (r *SpareRoom) OK() bool {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.at.IsZero() && now.Sub(r.at) < time.Second && now.After(r.at) {
		return r.ok
	}
	statfs := r.statfs
	if statfs == nil {
		statfs = syscall.Statfs
	}
	var st syscall.Statfs_t
	r.ok = statfs(r.Dir, &st) == nil && roomy(&st)
	r.at = now
	return r.ok
}

// roomy reports whether st shows a tenth of the blocks and of the inodes free for
// unprivileged use. A file system that reports no inode count (btrfs) has no inode
// limit.
func roomy(st *syscall.Statfs_t) bool {
	if st.Blocks == 0 || uint64(st.Bavail) < uint64(st.Blocks)/10 {
		return false
	}
	return st.Files == 0 || uint64(st.Ffree) >= uint64(st.Files)/10
}

// Spares hands out the files of spare/q to a long-running queue writer (qmail-queued).
// Every spare is a regular file owned by the writer's uid, with one name, named by its
// own inode number; it keeps the data of the message or envelope it last held (so that
// its blocks are not freed, with a discard on a file system mounted with -o discard, only
// to be allocated again by the next message), which the writer overwrites from offset 0
// and trims to what it wrote before the sync that precedes the todo/ link. A name that
// breaks these rules is unlinked, never used. It is safe for concurrent use, and
// concurrent takers (goroutines or processes) race only through rename, which one of them
// wins.
type Spares struct {
	q     Queue
	uid   int // the writer's, which a spare must belong to
	mu    sync.Mutex
	names []string // candidates from the last readdir, not yet tried
	empty time.Time
}

// NewSpares returns the spares of q's spare/q.
func NewSpares(q Queue) *Spares { return &Spares{q: q, uid: os.Geteuid()} }

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
		s.names = readSpares(filepath.Join(s.q.Dir, SpareQ))
		if len(s.names) == 0 {
			s.empty = time.Now()
			return "", false
		}
	}
	n := s.names[len(s.names)-1]
	s.names = s.names[:len(s.names)-1]
	return n, true
}

// readSpares returns up to 512 names of dir that may be spares: regular files (by the
// directory entry's type, which costs no stat) not starting with a dot. Other entries
// are removed where they can be, since a taker renames a name before it looks at the
// file.
func readSpares(dir string) []string {
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer f.Close()
	var names []string
	// Files moved aside (up to twice MaxSpares) may come first: read on until some
	// spares turn up or the directory ends.
	for len(names) == 0 {
		ents, err := f.ReadDir(512)
		for _, e := range ents {
			n := e.Name()
			switch {
			case strings.HasPrefix(n, "."):
				// moved aside by qmail-clean, not a spare yet
			case e.Type().IsRegular():
				names = append(names, n)
			default:
				os.Remove(filepath.Join(dir, n))
			}
		}
		if err != nil || len(ents) == 0 {
			break
		}
	}
	return names
}

// take renames a spare to the path dst returns for the spare's inode number and
// returns it opened for writing from offset 0, with mode 0644 and access and
// modification times of now (or of the last hour), so that qmail-send's 36-hour rule
// for files without todo/ starts afresh; the file still holds its old data, whose size
// it reports. It returns
// nil when no usable spare is left (the caller then creates a file), and an error only
// when the rename to dst failed for another reason than a lost race or a bad spare; with
// fixed set (dst does not depend on the spare), an existing dst is such an error.
func (s *Spares) take(dst func(ino uint64) string, fixed bool) (*qfile, error) {
	dir := filepath.Join(s.q.Dir, SpareQ)
	for range 64 {
		name, more := s.next()
		if !more {
			return nil, nil
		}
		p := filepath.Join(dir, name)
		id, err := strconv.ParseUint(name, 10, 64)
		if err != nil || strconv.FormatUint(id, 10) != name {
			os.Remove(p)
			continue
		}
		to := dst(id)
		// Renamed before it is opened: the winner of a race between takers owns what
		// it opens at its own name. Never over an existing name, which for mess/ could
		// be a queued message if the spare is misnamed.
		switch err := RenameNoReplace(p, to); {
		case err == nil:
		case errors.Is(err, syscall.ENOENT):
			continue // another taker won it, or it vanished
		case errors.Is(err, syscall.EEXIST) && !fixed:
			os.Remove(p) // its number names a file already: not a spare
			continue
		default:
			return nil, &os.LinkError{Op: "rename", Old: p, New: to, Err: err}
		}
		if f := openSpare(to, id, s.uid); f != nil {
			return f, nil
		}
		os.Remove(to)
	}
	return nil, nil
}

// openSpare opens the spare just renamed to p and readies it for reuse. It returns nil
// when the file is not a usable spare: not a regular file of ours with one name whose
// inode number is id, owned by uid. A second name (an old name that came back after a crash, before
// the rename out of it was on disk) would let two messages share one inode.
func openSpare(p string, id uint64, uid int) *qfile {
	// O_NONBLOCK: a FIFO must not block the open.
	fd, err := syscall.Open(p, syscall.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	var st syscall.Stat_t
	if syscall.Fstat(fd, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Ino != id ||
		st.Nlink != 1 || int(st.Uid) != uid {
		syscall.Close(fd)
		return nil
	}
	if st.Mode&0o7777 != 0644 && syscall.Fchmod(fd, 0644) != nil {
		syscall.Close(fd)
		return nil
	}
	// Times of now: qmail-send removes a mess/ file without todo/ or info/ 36 hours
	// after its last access, which must not come while it is written (at most Death).
	// A spare used within the last hour (the usual case) is young enough as it is:
	// its first write sets its modification time.
	if now := time.Now().Unix(); now-st.Atim.Sec > spareFresh || now-st.Mtim.Sec > spareFresh {
		// utimensat(fd, NULL, NULL, 0): both times to now, through the descriptor.
		if _, _, e := syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(fd), 0, 0, 0, 0, 0); e != 0 {
			syscall.Close(fd)
			return nil
		}
	}
	return &qfile{fd: fd, name: p, ino: id, old: st.Size}
}

// spareFresh is the age in seconds up to which a spare's access and modification
// times are left as they are when it is taken: with Death (24 hours) it stays well
// within qmail-send's 36 hours.
const spareFresh = 3600

// RenameNoReplace renames old to new unless new exists (EEXIST): renameat2(2) with
// RENAME_NOREPLACE, or where that is not available an lstat and a rename, which only
// the writer of the directory itself could race (qmail-queue for mess/, qmail-send for
// info/, local/ and remote/).
func RenameNoReplace(old, new string) error {
	if sysRenameat2 != 0 && !noRenameat2.Load() {
		o, err := syscall.BytePtrFromString(old)
		if err != nil {
			return err
		}
		n, err := syscall.BytePtrFromString(new)
		if err != nil {
			return err
		}
		const renameNoreplace = 1
		cwd := -100 // AT_FDCWD
		_, _, e := syscall.Syscall6(sysRenameat2, uintptr(cwd), uintptr(unsafe.Pointer(o)),
			uintptr(cwd), uintptr(unsafe.Pointer(n)), renameNoreplace, 0)
		if e == 0 {
			return nil
		}
		if e != syscall.ENOSYS && e != syscall.EINVAL {
			return e
		}
		noRenameat2.Store(true) // an old kernel or a file system without the flag
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(new, &st); err == nil {
		return syscall.EEXIST
	}
	return syscall.Rename(old, new)
}

var noRenameat2 atomic.Bool

// Recycler turns finished queue files into spares of spare/q (for qmail-clean).
//
// An inode must not be reused while a name that pointed to it, or another file of the
// same message id, may still come back after a crash: on a file system that does not
// order metadata updates (ext4 without a journal, which itself waits a minute before
// reusing a freed inode for this reason), a removed todo/<id> could return pointing to
// an envelope rewritten for another message, or a removed local/<id> could return and
// send a new message that reuses the id to an old message's recipients. So Recycle
// only moves a file aside, to spare/q/.<inode number>, with its contents; Flush, called
// every second or so, makes the file system's state durable (todo/ and syncfs(2),
// which covers qmail-send's removals in directories qmailq cannot open) and then
// renames the files moved aside before the previous Flush to spare/q/<inode number>,
// where a writer may take them. Waiting one Flush more covers what qmail-send removes
// just after qmail-clean's answer (info/<id>).
//
// A spare keeps its old contents (mail, or an envelope) until a writer overwrites and
// trims it: spare/q is qmailq's alone (mode 0700), like mess/ and intd/, and emptying
// the file would free its blocks only for the next message to allocate them again.
// The Recycler does not check what it moves: a writer checks a spare before it uses
// it (Spares.take), and unlinks a bad one.
//
// It keeps spare/q at most Burst entries while the file system has room, else Max,
// counting them by readdir at the start and then now and again (see recount), and
// unlinks files beyond that; Trim brings a quiet pool back to Max. It is safe for concurrent
// use.
type Recycler struct {
	Q     Queue
	Max   int         // default MaxSpares
	Burst int         // default BurstSpares
	Room  func() bool // whether to keep spares past Max; nil: a SpareRoom on Q.Dir

	room    *SpareRoom
	mu      sync.Mutex
	count   int // spare/q's entries, as last counted and tracked since: takers only shrink it
	ops     int
	counted int          // ops at the last count
	pending []string     // moved aside since the last Flush
	ready   []string     // moved aside before the last Flush: spares at the next one
	uid     atomic.Int64 // 1 + the process's effective uid, once known
}

// euid returns the process's effective uid, asked of the kernel once.
func (r *Recycler) euid() int {
	u := r.uid.Load()
	if u == 0 {
		u = int64(os.Geteuid()) + 1
		r.uid.Store(u)
	}
	return int(u - 1)
}

// recount is how many Recycle calls pass at least between two counts of spare/q,
// which its takers shrink behind the Recycler's back; with a large pool, a quarter of
// its count pass, so that the readdir costs a few entries per call however large
// spare/q has grown.
const recount = 256

// Recycle removes the name p from the queue: when p is the only name of a regular
// file it is moved aside to become a spare at a later Flush, otherwise (or when
// spare/q is full, or anything fails) the name is unlinked. A missing p is not an
// error.
func (r *Recycler) Recycle(p string) error {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		if err == syscall.ENOENT {
			return nil
		}
		return Remove(p)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Nlink != 1 || int(st.Uid) != r.euid() {
		return Remove(p)
	}
	return r.RecycleInode(p, st.Ino)
}

// RecycleInode is Recycle for a name known to be a file with inode number ino, such
// as mess/<split>/<ino>: it is moved aside without a look at it. If it is not what
// its name says, the writer that takes it finds out and unlinks it.
func (r *Recycler) RecycleInode(p string, ino uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ops == 0 || r.ops-r.counted >= max(recount, r.count/4) {
		r.count = countSpares(r.Q)
		r.counted = r.ops
	}
	r.ops++
	// Past the pool's capacity the file is still moved aside, and Flush unlinks it:
	// unlinking frees its blocks, which on a file system mounted with discard waits
	// for the device, and that belongs in Flush, not here while qmail-send waits for
	// the answer. Only past the capacity and Max more, when Flush falls behind, is
	// the name unlinked here.
	rest, _ := r.limits()
	if r.count < r.capacity()+rest {
		name := "." + strconv.FormatUint(ino, 10)
		// syscall.Rename: os.Rename would stat the new name first.
		err := syscall.Rename(p, filepath.Join(r.Q.Dir, SpareQ, name))
		if err == nil {
			r.count++
			r.pending = append(r.pending, name)
			return nil
		}
	}
	return Remove(p)
}

// Remove unlinks p as os.Remove does, with one syscall when it succeeds; a missing p
// is not an error.
func Remove(p string) error {
	if err := syscall.Unlink(p); err == nil || err == syscall.ENOENT {
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
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
// before the previous Flush into spares: each is renamed to its inode number, with
// its contents. Calling Flush twice turns every file moved aside into a spare.
func (r *Recycler) Flush() {
	r.mu.Lock()
	batch := r.ready
	r.ready, r.pending = r.pending, nil
	excess := r.count - r.capacity() // files moved aside past it: unlinked, not kept
	excess = min(excess, len(batch))
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
	for i, name := range batch {
		p := filepath.Join(dir, name)
		if i < excess {
			Remove(p) // its name is gone from the queue already; only the inode goes
			continue
		}
		ino, err := strconv.ParseUint(name[1:], 10, 64)
		if err != nil || strconv.FormatUint(ino, 10) != name[1:] ||
			syscall.Rename(p, filepath.Join(dir, name[1:])) != nil {
			Remove(p) // not one of ours (".new.*" of an interrupted TopUp)
		}
	}
	if excess > 0 {
		r.mu.Lock()
		r.count -= excess
		r.mu.Unlock()
	}
}

// limits returns Max and Burst, or their defaults; Burst is at least Max.
func (r *Recycler) limits() (rest, burst int) {
	rest, burst = r.Max, r.Burst
	if rest == 0 {
		rest = MaxSpares
	}
	if burst == 0 {
		burst = BurstSpares
	}
	return rest, max(rest, burst)
}

// capacity is how many entries spare/q may hold now: Burst while the file system has
// room, else Max. r.mu must be held.
func (r *Recycler) capacity() int {
	rest, burst := r.limits()
	if r.count < rest {
		return rest // no need to ask the file system
	}
	hasRoom := r.Room
	if hasRoom == nil {
		if r.room == nil {
			r.room = &SpareRoom{Dir: r.Q.Dir}
		}
		hasRoom = r.room.OK
	}
	if hasRoom() {
		return burst
	}
	return rest
}

// Trim unlinks spares past Max, at most n of them, and returns how many it removed.
// qmail-clean calls it when no request has come for a while: a pool that a drain
// grew past Max gives back its space then, not in a burst of discards while mail
// flows. It stops early once quiet, when not nil, reports false (mail again). It
// does nothing while files moved aside wait for a Flush. A spare a writer takes
// meanwhile is its own: the writer renames it first, and the unlink finds it gone.
func (r *Recycler) Trim(n int, quiet func() bool) int {
	rest, _ := r.limits()
	r.mu.Lock()
	busy := len(r.pending) > 0 || len(r.ready) > 0
	over := r.count > rest // takers only shrink spare/q behind the count's back
	ops := r.ops
	r.mu.Unlock()
	if busy || !over || n <= 0 {
		return 0
	}
	// One readdir both counts spare/q and finds the spares to unlink.
	dir := filepath.Join(r.Q.Dir, SpareQ)
	f, err := os.Open(dir)
	if err != nil {
		return 0
	}
	all, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return 0
	}
	r.mu.Lock()
	if r.ops == ops {
		r.count, r.counted = len(all), r.ops
	}
	want := min(r.count-rest, n)
	r.mu.Unlock()
	removed := 0
	for _, name := range all {
		if removed >= want {
			break
		}
		if strings.HasPrefix(name, ".") {
			continue // moved aside, or a TopUp's: not a spare yet
		}
		if quiet != nil && !quiet() {
			break
		}
		if syscall.Unlink(filepath.Join(dir, name)) == nil {
			removed++
		}
	}
	r.mu.Lock()
	r.count = max(r.count-removed, 0)
	r.mu.Unlock()
	return removed
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
// inodes instead of allocating them while a client waits. It is the quiet bound
// itself: a burst takes two spares a message (mess/ and intd/), and removals refill
// the pool only a second or two later (delivery, then qmail-clean's once-a-second
// Flush), so a pool of 2000 ran dry within the first second of a burst at 850
// messages a second. Past that, each new file costs an inode allocation, which on
// ext4 without a journal scans past every inode freed in the last minute or more (by
// any program, in that block group). An empty spare holds an inode and no blocks.
const SpareLowWater = MaxSpares

// TopUp creates empty spares in spare/q until it holds low files, at most max of
// them in this call; it returns how many it made. As with a recycled file, a new
// spare gets its name only once it is on disk: the files are created under
// temporary names (".new.*", which takers skip and a restart removes), the file
// system is synced, and then each is renamed to its inode number. It does nothing
// while files moved aside wait for a Flush: then spares are coming anyway.
func (r *Recycler) TopUp(low, max int) int {
	r.mu.Lock()
	busy := len(r.pending) > 0 || len(r.ready) > 0
	ops := r.ops
	r.mu.Unlock()
	if busy {
		return 0
	}
	// Counted without the lock, which qmail-clean's requests take; a request that
	// came meanwhile has its own count, which is newer.
	have := countSpares(r.Q)
	r.mu.Lock()
	if r.ops == ops {
		r.count = have
	}
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
		if err != nil {
			os.Remove(tmp)
			break
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
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
