package send

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/notqmail/notqmail/src/groupsync"
	"github.com/notqmail/notqmail/src/queue"
)

// spareMax is how many spares queue/spare/s keeps in quiet spells; while mail flows
// it may hold up to spareBurst while the file system has room (queue.SpareRoom), and
// beyond that, finished files are unlinked as qmail does.
const spareMax = queue.MaxSpares

// spareBurst bounds queue/spare/s while mail flows (queue.BurstSpares; tests change
// it): a drain of a backlog then frees no blocks, which on a file system mounted with
// discard would each wait for the device, in qmail-send's main loop.
var spareBurst = queue.BurstSpares

// spareTrimPerTick is how many spares past spareMax the pool unlinks per topUpIdle
// of quiet (tests change it).
var spareTrimPerTick = queue.TrimPerTick

// spares reuses qmails's queue inodes through queue/spare/s (see queue.SpareS): a
// finished info/, local/ or remote/ file is renamed there, named by its inode number,
// and a new one is a spare renamed into place. On ext4 without a journal every create
// scans the block group's recently freed inodes, so a rename is far cheaper than an
// unlink and a create.
//
// A spare keeps its data block: emptying it would free the block (with a synchronous
// discard on a file system mounted with -o discard) only for the next user to allocate
// one again. The new user overwrites it in place and cuts it to length (trim) before
// syncing; spare/s is qmails's alone, mode 0700, like the queue files it recycles.
//
// A spare is rewritten only once its rename out of its directory is on disk: on a file
// system that does not order metadata writes (ext4 without a journal), a crash could
// otherwise bring back the old name, pointing at another message's data. A sync of
// the whole file system (commits) started after the rename provides that; spares are
// reused oldest first, so one has usually completed already, for the files of
// messages preprocessed since.
//
// The pool is shared by the preprocessing goroutines and the main loop.
type spares struct {
	dir   string // queue/spare/s; "" when the queue has none (an old, unfixed queue)
	mode  os.FileMode
	syncs *commits
	room  func() bool // whether to keep spares past spareMax

	mu       sync.Mutex
	queue    []spare // spare/s entries known to be there, oldest first, at most spareBurst
	reserved int     // releases in progress, counted against spareMax

	lastUse atomic.Int64 // when create or remove last ran (UnixNano); 0: never
}

type spare struct {
	name string // its inode number
	gen  uint64 // the generation of its rename into spare/s (commits.mark); 0 if found at start-up
	// since is the commits.begin taken before that rename: a sync failure since
	// then may have been the rename's.
	since groupsync.Mark
}

// openSpares lists up to spareBurst entries of dir. Entries beyond that, or not named
// like an inode number, are left alone: they cost nothing but their space.
func openSpares(dir string, mode os.FileMode, syncs *commits) *spares {
	s := &spares{mode: mode, syncs: syncs, room: (&queue.SpareRoom{Dir: dir}).OK}
	f, err := os.Open(dir)
	if err != nil {
		return s
	}
	defer f.Close()
	s.dir = dir
	for len(s.queue) < spareBurst {
		names, err := f.Readdirnames(256)
		for _, n := range names {
			if _, ok := parseID(n); ok && len(s.queue) < spareBurst {
				s.queue = append(s.queue, spare{name: n})
			}
		}
		if err != nil || len(names) == 0 {
			break
		}
	}
	return s
}

// spareLowWater is how many spares qmail-send keeps in spare/s from its start: it
// makes new ones until the pool holds that many, so that the first burst of mail
// reuses inodes instead of allocating them (a variable for tests).
var spareLowWater = 1024

// topUpIdle is how long the pool must go unused before the top-up makes spares: a
// create costs as much CPU as the file it would save, so it is done in quiet spells,
// not while mail is flowing (a variable for tests).
var topUpIdle = time.Second

// startTopUp makes new empty spares in the background until the pool holds low, then
// trims it back to spareMax in quiet spells whenever it has grown past that
// (trimLoop), and returns the function that ends qmail-send's use of the pool: it
// stops both, waits for them and then, if the name of a spare may not be on disk
// yet, syncs, since the next run takes the spares it finds as synced. The top-up runs beside the
// daemon's work, in its quiet spells, rather than before it: a thousand creates take
// seconds on the file systems spares are for, and mail that arrives meanwhile must
// not wait, nor queue up into a burst of deliveries when qmail-send finally starts.
func (s *spares) startTopUp(low int) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.topUp(low, quit)
		s.trimLoop(quit)
	}()
	return func() {
		close(quit)
		<-done
		if s.unsynced() {
			s.syncs.sync(s.syncs.begin()) // a failure leaves the risk the next run would take anyway
		}
	}
}

// unsynced reports whether a spare in the pool was named after the last sync.
func (s *spares) unsynced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range s.queue {
		if sp.gen != 0 && !s.syncs.covered(sp.gen, sp.since) {
			return true
		}
	}
	return false
}

// topUp adds new empty spares until the pool holds low or quit is closed, and
// returns how many it made; it waits while the pool was used in the last topUpIdle.
// Each is created under a temporary name, renamed to its inode number and queued
// with the generation of the first sync that covers its name, as a recycled spare
// is: pop takes it only once that sync has completed, so a crash cannot leave a
// second name for a file in use.
func (s *spares) topUp(low int, quit <-chan struct{}) int {
	if s.dir == "" {
		return 0
	}
	tmp := filepath.Join(s.dir, ".new")
	os.Remove(tmp) // left by a run that stopped here; spare/s is ours alone
	n := 0
	for {
		if !s.waitQuiet(quit) {
			return n
		}
		s.mu.Lock()
		full := len(s.queue) >= low || len(s.queue)+s.reserved >= spareMax
		s.mu.Unlock()
		if full {
			return n
		}
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, s.mode)
		if err != nil {
			return n
		}
		fi, err := f.Stat()
		f.Close()
		var name string
		if err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				name = strconv.FormatUint(st.Ino, 10)
			}
		}
		since := s.syncs.begin()
		// syscall.Rename: os.Rename would stat the target first.
		if name == "" || syscall.Rename(tmp, filepath.Join(s.dir, name)) != nil {
			os.Remove(tmp)
			return n
		}
		gen := s.syncs.mark() // taken after the rename: a sync call from then on covers it
		s.mu.Lock()
		s.queue = append(s.queue, spare{name: name, gen: gen, since: since})
		s.mu.Unlock()
		n++
	}
}

// waitQuiet waits until the pool has gone unused for topUpIdle, and reports false if
// quit closed first.
func (s *spares) waitQuiet(quit <-chan struct{}) bool {
	for {
		if wait := s.untilQuiet(); wait > 0 {
			if !sleep(wait, quit) {
				return false
			}
			continue
		}
		select {
		case <-quit:
			return false
		default:
			return true
		}
	}
}

// sleep waits for d, and reports false if quit closed first.
func sleep(d time.Duration, quit <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-quit:
		return false
	case <-t.C:
		return true
	}
}

// trimLoop unlinks spares past spareMax, spareTrimPerTick of them per topUpIdle of
// quiet, until quit closes: a pool that a drain grew gives its space back when mail
// is quiet, not in a burst of discards while it flows.
func (s *spares) trimLoop(quit <-chan struct{}) {
	if s.dir == "" {
		return
	}
	for s.waitQuiet(quit) {
		// In small steps, so that mail coming back stops the unlinks, each of which
		// may wait for a discard.
		for n := 0; n < spareTrimPerTick && s.quiet(); {
			k := s.trim(min(trimStep, spareTrimPerTick-n))
			if k == 0 {
				break
			}
			n += k
		}
		if !sleep(topUpIdle, quit) {
			return
		}
	}
}

// trimStep is how many spares trimLoop unlinks between two looks at whether the pool
// is in use again.
const trimStep = 16

// quiet reports whether the pool has gone unused for topUpIdle.
func (s *spares) quiet() bool { return s.untilQuiet() <= 0 }

// untilQuiet is how long until the pool will have gone unused for topUpIdle; 0 or
// less when it has (or was never used).
func (s *spares) untilQuiet() time.Duration {
	last := s.lastUse.Load()
	if last == 0 {
		return 0
	}
	return time.Until(time.Unix(0, last).Add(topUpIdle))
}

// trim unlinks up to n spares past spareMax, oldest first, and returns how many it
// removed. A spare whose rename into spare/s no sync has covered yet stays: its
// inode must not be freed while its old name may come back after a crash.
func (s *spares) trim(n int) int {
	s.mu.Lock()
	var names []string
	for len(names) < n && len(s.queue) > spareMax {
		sp := s.queue[0]
		if sp.gen != 0 && !s.syncs.covered(sp.gen, sp.since) {
			break
		}
		names = append(names, sp.name)
		s.queue[0] = spare{}
		s.queue = s.queue[1:]
	}
	if len(s.queue) <= spareMax && cap(s.queue) > 2*spareMax {
		s.queue = slices.Clip(s.queue) // the next append gives the drain's array back
	}
	s.mu.Unlock()
	for _, name := range names {
		os.Remove(filepath.Join(s.dir, name))
	}
	return len(names)
}

func (s *spares) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// spareWait is the pool size from which a spare whose removal is not yet on disk is
// synced and used rather than passed over for a new file: the pool then holds old
// spares that no sync has covered yet.
const spareWait = 256

// pop takes the oldest spare. If its removal is not on disk yet, it is left in place
// and pop reports false, so the caller creates a file instead of waiting for a sync,
// unless the pool has grown to spareWait; then must says the caller has to sync.
func (s *spares) pop() (sp spare, must, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return spare{}, false, false
	}
	sp = s.queue[0]
	if sp.gen != 0 && !s.syncs.covered(sp.gen, sp.since) {
		if len(s.queue) < spareWait {
			return spare{}, false, false
		}
		must = true
	}
	s.queue[0] = spare{}
	s.queue = s.queue[1:]
	return sp, must, true
}

// create makes a new file at path for writing, as O_CREAT|O_EXCL would, with the mode
// and times a newly created file gets. It takes a spare when there is one: the file
// may then hold old data past what the caller writes, so the caller must trim it.
func (s *spares) create(path string) (*os.File, error) {
	s.lastUse.Store(time.Now().UnixNano())
	for s.dir != "" {
		sp, must, ok := s.pop()
		if !ok {
			break
		}
		if must && s.syncs.syncedSince(sp.gen, sp.since) != nil {
			// Its old name may still be on disk: not a spare to use yet, or ever.
			os.Remove(filepath.Join(s.dir, sp.name))
			continue
		}
		if f := s.adopt(filepath.Join(s.dir, sp.name), sp.name, path); f != nil {
			return f, nil
		}
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0644)
}

// adopt renames spare src (named name) to path and readies it; on any doubt about the
// file it gives it up (removing it from path) and returns nil, and the caller creates
// a new one instead.
func (s *spares) adopt(src, name, path string) *os.File {
	// Never replace an existing file; the caller's O_EXCL reports it.
	if queue.RenameNoReplace(src, path) != nil {
		return nil
	}
	// A bare descriptor: os.OpenFile would offer a regular file to the poller.
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(path)
		return nil
	}
	var st syscall.Stat_t
	// A spare must be a regular file of ours with no other name: a second link (a
	// rename whose old entry came back after a crash) would let two messages share
	// one inode.
	if syscall.Fstat(fd, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Nlink != 1 ||
		strconv.FormatUint(st.Ino, 10) != name || int(st.Uid) != os.Geteuid() ||
		(os.FileMode(st.Mode&0o7777) != s.mode && syscall.Fchmod(fd, uint32(s.mode)) != nil) {
		syscall.Close(fd)
		os.Remove(path)
		return nil
	}
	// Its times need no setting: the caller writes it, which makes its modification
	// time now, as a new file's (info/'s is the message's birth).
	return os.NewFile(uintptr(fd), path)
}

// remove replaces os.Remove(path) for a finished file: the file is renamed into
// spare/s, unless spare/s is full, missing or the rename fails, when it
// is unlinked. A missing path yields the error os.Remove gives.
func (s *spares) remove(path string) error {
	s.lastUse.Store(time.Now().UnixNano())
	if s.dir == "" {
		return os.Remove(path)
	}
	s.mu.Lock()
	n := len(s.queue) + s.reserved
	s.reserved++ // given back below if the file is unlinked after all
	s.mu.Unlock()
	// The file system is asked (a statfs at most once a second) only past spareMax.
	if n >= spareBurst || (n >= spareMax && (s.room == nil || !s.room())) {
		s.mu.Lock()
		s.reserved--
		s.mu.Unlock()
		return os.Remove(path)
	}
	since := s.syncs.begin()
	name, err := s.stash(path)
	gen := s.syncs.mark() // taken after the rename: a sync call from then on covers it
	s.mu.Lock()
	s.reserved--
	if err == nil {
		s.queue = append(s.queue, spare{name: name, gen: gen, since: since})
	}
	s.mu.Unlock()
	if err != nil {
		if _, serr := os.Lstat(path); serr != nil {
			return err // not there to remove
		}
		return os.Remove(path)
	}
	return nil
}

// stash moves path into spare/s. Only qmail-send renames or removes qmails's
// files, so the file statted is the file renamed.
func (s *spares) stash(path string) (string, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || !st.Mode().IsRegular() || sys.Nlink != 1 {
		return "", errors.New("not a spare candidate")
	}
	name := strconv.FormatUint(sys.Ino, 10)
	if err := syscall.Rename(path, filepath.Join(s.dir, name)); err != nil {
		return "", err
	}
	return name, nil
}

// trim cuts f, written from its start, to what has been written: a spare's old data
// beyond it goes.
func trim(f *os.File) error {
	off, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != off {
		return f.Truncate(off)
	}
	return nil
}

// umaskedMode is 0644 under the process's umask: the mode qmail-send's new queue
// files get.
func umaskedMode() os.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return 0644 &^ os.FileMode(m)
}
