package send

import (
	"io"
	"sync"

	"github.com/notqmail/notqmail/src/groupsync"
)

// syncer makes everything written to the queue's file system before a call to Sync
// durable before Sync returns; *groupsync.Syncer is the one qmail-send uses.
type syncer interface {
	Sync() error
	io.Closer
}

// openSyncer opens the syncer for the file system holding dir; tests replace it to
// see when the queue is synced.
var openSyncer = func(dir string) (syncer, error) { return groupsync.Open(dir) }

// commits is qmail-send's group commit: preprocessing goroutines write their
// messages' files, then call sync, and one syncfs makes the files, their inodes and
// their directory entries durable for every caller waiting at that moment, where each
// message would otherwise fsync three files and three directories.
//
// It also numbers the syncs, so that a change (a spare renamed out of info/) can be
// known durable without a sync of its own: mark after the change names the first
// sync call that covers it, and covered says whether one such call has succeeded.
// (A mark taken before the change would not do: the sync call it names may start
// its syncfs before the change is made.)
type commits struct {
	s syncer

	mu   sync.Mutex
	next uint64 // the number the next sync call takes; calls start at 1
	done uint64 // the highest number of a sync call that succeeded
}

func newCommits(s syncer) *commits { return &commits{s: s, next: 1} }

// sync returns once everything written before the call is on disk.
func (c *commits) sync() error {
	c.mu.Lock()
	n := c.next
	c.next++
	c.mu.Unlock()
	// Every syncfs the call waits for starts after the call: after whatever the
	// caller, or anyone who took a mark below n, had written.
	err := c.s.Sync()
	if err == nil {
		c.mu.Lock()
		c.done = max(c.done, n)
		c.mu.Unlock()
	}
	return err
}

// mark returns the generation of a change completed before mark is called: the
// number of the first sync call that covers it, since that call takes its number,
// and then starts its syncfs, after mark returns.
func (c *commits) mark() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next
}

// covered reports whether a sync call numbered gen or later has succeeded, so that
// a change of generation gen is on disk.
func (c *commits) covered(gen uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done >= gen
}

// syncedSince makes sure a change of generation gen is on disk, syncing if no sync
// has covered it yet.
func (c *commits) syncedSince(gen uint64) error {
	if c.covered(gen) {
		return nil
	}
	return c.sync()
}

func (c *commits) close() error { return c.s.Close() }
