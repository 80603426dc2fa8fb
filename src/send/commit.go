package send

import (
	"io"
	"sync"

	"github.com/notqmail/notqmail/src/groupsync"
)

// syncer makes everything written to the queue's file system before a call to
// SyncSince durable before it returns, and fails it if any sync since the mark
// failed; *groupsync.Syncer is the one qmail-send uses.
type syncer interface {
	Mark() groupsync.Mark
	SyncSince(groupsync.Mark) error
	FailedSince(groupsync.Mark) error
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
// A writer takes a groupsync mark (begin) before it writes and passes it to sync,
// which then also fails if a sync that another writer ran since the mark failed: that
// one may have written back, and failed to write, this writer's data.
//
// It also numbers the syncs, so that a change (a spare renamed out of info/) can be
// known durable without a sync of its own: mark after the change names the first
// sync call that covers it, and covered says whether one such call has succeeded
// and no sync since a begin taken before the change has failed. (A mark taken
// before the change would not name a covering call: the sync call it names may
// start its syncfs before the change is made.)
type commits struct {
	s syncer

	mu   sync.Mutex
	next uint64 // the number the next sync call takes; calls start at 1
	done uint64 // the highest number of a sync call that succeeded
}

func newCommits(s syncer) *commits { return &commits{s: s, next: 1} }

// begin returns the mark a writer takes before its first write, for sync,
// covered and syncedSince.
func (c *commits) begin() groupsync.Mark { return c.s.Mark() }

// sync returns once everything written before the call is on disk, or with the
// error of a sync since since.
func (c *commits) sync(since groupsync.Mark) error {
	c.mu.Lock()
	n := c.next
	c.next++
	c.mu.Unlock()
	// Every syncfs the call waits for starts after the call: after whatever the
	// caller, or anyone who took a mark below n, had written.
	err := c.s.SyncSince(since)
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

// covered reports whether a change of generation gen, begun at since, is on disk: a
// sync call numbered gen or later has succeeded, and no sync since since has
// failed.
func (c *commits) covered(gen uint64, since groupsync.Mark) bool {
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	return done >= gen && c.s.FailedSince(since) == nil
}

// syncedSince makes sure a change of generation gen, begun at since, is on disk,
// syncing if no sync has covered it yet.
func (c *commits) syncedSince(gen uint64, since groupsync.Mark) error {
	if c.covered(gen, since) {
		return nil
	}
	return c.sync(since)
}

func (c *commits) close() error { return c.s.Close() }
