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

	mu      sync.Mutex
	cond    *sync.Cond
	running bool
	waiting int    // callers blocked in Sync, for tests
	started uint64 // syncfs calls started so far; the next is started+1
	done    uint64 // the last syncfs call that finished
	results [64]result
	syncfs  func(fd int) error // unix.Syncfs; tests replace it
}

type result struct {
	seq uint64
	err error
}

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

// Sync returns once everything written to the file system before the call is on
// disk, or the error of the syncfs that should have put it there. A syncfs that was
// already running at the call may have written back some of the caller's data too:
// had that failed, the error would be reported to that syncfs alone (the kernel
// reports a writeback error once per open file) and the next one would succeed, so
// its failure fails the caller as well.
func (s *Syncer) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The first syncfs to start after this moment covers our writes.
	want := s.started + 1
	overlapped := s.running // syncfs number want-1, running now
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
		s.results[seq%uint64(len(s.results))] = result{seq, err}
		s.cond.Broadcast()
	}
	seqs := []uint64{want}
	if overlapped {
		seqs = append(seqs, want-1)
	}
	for _, seq := range seqs {
		r := s.results[seq%uint64(len(s.results))]
		if r.seq != seq {
			// Overwritten by later rounds while we slept: we cannot tell, so fail
			// safe (the caller reports a temporary failure).
			return fmt.Errorf("groupsync: result of sync %d lost", seq)
		}
		if r.err != nil {
			return fmt.Errorf("syncfs: %w", r.err)
		}
	}
	return nil
}
