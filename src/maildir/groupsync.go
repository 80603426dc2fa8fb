package maildir

import (
	"sync"
	"syscall"

	"github.com/notqmail/notqmail/src/groupsync"
)

// maxFileSystems bounds the syncers a GroupSync keeps open: each holds a descriptor
// (and keeps its file system busy). Maildirs on further file systems get fsyncs.
const maxFileSystems = 16

// GroupSync makes the maildir deliveries of a long-running process durable together:
// one groupsync.Syncer per file system, opened on the first delivery there (keyed by
// the st_dev of the maildir's new/), so that concurrent deliveries share one syncfs
// instead of each fsyncing its file and new/. Its zero value is ready to use; it is
// safe for concurrent use.
type GroupSync struct {
	mu      sync.Mutex
	syncers map[uint64]*groupsync.Syncer
	opened  func(dev uint64) // tests: called when a syncer is opened
}

// syncer returns a sync of newDir's file system that fails if any syncfs from now on
// fails (its mark is taken now, before the delivery writes: another delivery's
// syncfs may write back, and fail to write, this one's data), or nil if newDir
// cannot be examined or too many file systems are in use already: then the
// delivery fsyncs.
func (g *GroupSync) syncer(newDir string) func() error {
	var st syscall.Stat_t
	if err := syscall.Stat(newDir, &st); err != nil {
		return nil
	}
	dev := uint64(st.Dev)
	g.mu.Lock()
	defer g.mu.Unlock()
	if s, ok := g.syncers[dev]; ok {
		return since(s)
	}
	if len(g.syncers) >= maxFileSystems {
		return nil
	}
	s, err := groupsync.Open(newDir)
	if err != nil {
		return nil
	}
	// If newDir changed between the Stat and the Open (a mount, a rename), this
	// Syncer might not stand for dev: fsync this once and open again next time.
	var st2 syscall.Stat_t
	if err := syscall.Stat(newDir, &st2); err != nil || st2.Dev != st.Dev || st2.Ino != st.Ino {
		s.Close()
		return nil
	}
	if g.syncers == nil {
		g.syncers = make(map[uint64]*groupsync.Syncer)
	}
	g.syncers[dev] = s
	if g.opened != nil {
		g.opened(dev)
	}
	return since(s)
}

// since returns s's sync from a mark taken now.
func since(s *groupsync.Syncer) func() error {
	m := s.Mark()
	return func() error { return s.SyncSince(m) }
}

// Close releases the syncers. The GroupSync must not be used after it.
func (g *GroupSync) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for dev, s := range g.syncers {
		s.Close()
		delete(g.syncers, dev)
	}
}
