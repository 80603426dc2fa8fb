// Package queue is qmail's on-disk queue: its layout, its file formats and the
// algorithms that write and read it, kept byte-for-byte compatible with qmail so an
// existing queue is picked up unchanged.
package queue

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/notqmail/notqmail/src/home"
)

// DefaultSplit is qmail's conf-split: the number of subdirectories of the split
// directories.
const DefaultSplit = 23

// Split directories hold <id % split>/<id>; the others hold <id> directly.
var (
	SplitDirs   = []string{"mess", "info", "local", "remote"}
	UnsplitDirs = []string{"pid", "intd", "todo", "bounce"}
)

// Queue is a queue directory with its split count.
type Queue struct {
	Dir   string
	Split int
}

// Open returns the queue at dir. The split count is taken from the queue itself (the
// number of subdirectories of mess/), so a queue built with another conf-split is read
// correctly; a queue without mess/ gets DefaultSplit.
func Open(dir string) Queue {
	return Queue{Dir: dir, Split: detectSplit(dir)}
}

// Default returns the queue under the qmail home.
func Default() Queue { return Open(home.Path("queue")) }

func detectSplit(dir string) int {
	ents, err := os.ReadDir(filepath.Join(dir, "mess"))
	if err != nil {
		return DefaultSplit
	}
	n := 0
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if i, err := strconv.Atoi(e.Name()); err == nil && i >= 0 && strconv.Itoa(i) == e.Name() {
			n++
		}
	}
	if n == 0 {
		return DefaultSplit
	}
	return n
}

// IsSplit reports whether a queue subdirectory is split.
func IsSplit(sub string) bool {
	for _, s := range SplitDirs {
		if s == sub {
			return true
		}
	}
	return false
}

// Path returns the file for message id in a queue subdirectory: mess/<id%split>/<id>
// for split directories and todo/<id> for the others (qmail's fmtqfn).
func (q Queue) Path(sub string, id uint64) string {
	return filepath.Join(q.Dir, q.Rel(sub, id))
}

// Rel is Path relative to the queue directory.
func (q Queue) Rel(sub string, id uint64) string {
	if IsSplit(sub) {
		return fmt.Sprintf("%s/%d/%d", sub, id%uint64(q.Split), id)
	}
	return fmt.Sprintf("%s/%d", sub, id)
}

// LockDir returns queue/lock.
func (q Queue) LockDir() string { return filepath.Join(q.Dir, "lock") }

// Trigger returns the trigger FIFO, queue/lock/trigger.
func (q Queue) Trigger() string { return filepath.Join(q.Dir, "lock", "trigger") }
