// Package groupsync makes the files of many concurrent writers durable together: one
// syncfs(2) serves every caller waiting at that moment, where each would otherwise
// fsync its own files and directories one by one.
//
// qmail makes each queue file durable with its own fsync, and on Linux every fsync
// ends in a flush of the disk's write cache. With ten messages in flight, each
// needing several files and directory entries on disk, the flushes are most of the
// cost. A database would commit them as a group; this package does the same for the
// queue: a caller writes its files, then calls Sync, which returns once a syncfs that
// started after the call has finished. Callers that arrive while a syncfs is running
// share the next one, so under load one flush covers many messages, and a lone
// caller pays about what fsyncing its files would cost.
//
// A caller whose writes take a while (a message arriving over the network) takes a
// Mark before its first write and passes it to SyncSince: a syncfs that another
// caller ran in the meantime may have written back, and failed to write, the data.
//
// syncfs writes back everything dirty on the file system, not only the caller's
// files; on a file system shared with busy writers that can take longer than the
// caller's own fsyncs would. Its errors are the file system's writeback errors since
// the Syncer opened it (Linux 5.8 and later), so a failed write anywhere on the file
// system fails the group: a temporary failure, never a false success.
package groupsync

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Syncer batches syncfs calls on one file system. Its zero value is not usable; use
// Open.
type Syncer struct {
	f *os.File // any file on the file system; its descriptor names it to syncfs

	mu       sync.Mutex
	cond     *sync.Cond
	running  bool
	waiting  int                // callers blocked in Sync, for tests
	started  uint64             // syncfs calls started so far; the next is started+1
	done     uint64             // the last syncfs call that finished
	lastFail result             // the newest failed syncfs call; seq 0: none
	syncfs   func(fd int) error // unix.Syncfs; tests replace it
}

type result struct {
	seq uint64
	err error
}

// A Mark is a point in a Syncer's history, taken before a caller writes the data it
// will make durable: SyncSince(m) fails if any syncfs that may have written back data
// written after m failed. The kernel reports a writeback error to one syncfs on a
// descriptor, so a syncfs of another caller, running or finished before the caller
// asks for its own, may have taken the error of the caller's data.
//
// Its value is the number of the first syncfs call (from 1) that may see writes made
// after the mark.
type Mark uint64

// Open returns a Syncer for the file system holding path (a directory, usually).
func Open(path string) (*Syncer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	s := &Syncer{f: f, syncfs: unix.Syncfs}
	s.cond = sync.NewCond(&s.mu)
	return s, nil
}

// Close releases the Syncer's descriptor. Sync must not be called after it.
func (s *Syncer) Close() error { return s.f.Close() }

// Mark returns the mark to take before writing: see SyncSince.
func (s *Syncer) Mark() Mark {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mark()
}

func (s *Syncer) mark() Mark {
	if s.running {
		// Started before the mark, it may still write back what is written after.
		return Mark(s.started)
	}
	return Mark(s.started + 1)
}

// Sync is SyncSince a mark taken at the call: right for data written before the
// call when nothing could have synced it in between, as when the Syncer's only
// user is the caller.
func (s *Syncer) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncSince(s.mark())
}

// SyncSince returns once everything written to the file system before the call is
// on disk, or with an error if a syncfs that started after m failed, or the one
// running at m: any of them may have written back, and failed to write, data written
// after m. A caller takes m before its first write and may use it for several syncs.
func (s *Syncer) SyncSince(m Mark) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncSince(m)
}

func (s *Syncer) syncSince(m Mark) error {
	// The first syncfs to start after this moment covers our writes.
	want := s.started + 1
	for s.done < want {
		if s.running {
			s.waiting++
			s.cond.Wait()
			s.waiting--
			continue
		}
		s.running = true
		s.started++
		seq := s.started
		s.mu.Unlock()
		err := s.syncfs(int(s.f.Fd()))
		s.mu.Lock()
		s.running = false
		s.done = seq
		if err != nil {
			s.lastFail = result{seq, err}
		}
		s.cond.Broadcast()
	}
	return s.failedSince(m)
}

// failedSince returns the error of the newest failed syncfs if it is numbered m
// or later. A failure later than the caller's own syncfs counts too: failures
// are rare, and a false failure costs a retry where a false success loses mail.
func (s *Syncer) failedSince(m Mark) error {
	if r := s.lastFail; r.seq != 0 && r.seq >= uint64(m) {
		return fmt.Errorf("syncfs: %w", r.err)
	}
	return nil
}

// FailedSince reports the error of a syncfs that may have written back data written
// after m and failed, without syncing: for data that a later, successful sync is
// known to cover.
func (s *Syncer) FailedSince(m Mark) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failedSince(m)
}
