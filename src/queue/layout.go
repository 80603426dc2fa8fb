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

// Spare directories hold finished queue files, named by their inode number, that
// are renamed back into use instead of creating new ones: SpareQ for qmailq's files
// (mess/, intd/), SpareS for qmails's (info/, local/, remote/). A spare may still hold
// its old contents, which its next user overwrites and cuts to length; both
// directories are mode 0700, like the files they hold. Reusing an inode
// costs a rename; allocating and freeing one costs far more on some file systems
// (ext4 without a journal scans every recently freed inode of the block group on
// each create). qmail itself ignores these directories; qmail-qfix creates them.
const (
	SpareQ = "spare/q"
	SpareS = "spare/s"
)

// Queue is a queue directory with its split count.
type Queue struct {
	Dir   string
	Split int
}

// Open returns the queue at dir. The split count is taken from the queue itself, so a
// queue built with another conf-split is read correctly: it is one more than the highest
// numbered subdirectory of any split directory, so that one missing subdirectory cannot
// shrink it and send lookups to the wrong place. A queue without any gets DefaultSplit.
func Open(dir string) Queue {
	return Queue{Dir: dir, Split: detectSplit(dir)}
}

// Default returns the queue under the qmail home.
func Default() Queue { return Open(home.Path("queue")) }

func detectSplit(dir string) int {
	highest := -1
	for _, sub := range SplitDirs {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			i, err := strconv.Atoi(e.Name())
			if err != nil || i < 0 || strconv.Itoa(i) != e.Name() {
				continue
			}
			highest = max(highest, i)
		}
	}
	if highest < 0 {
		return DefaultSplit
	}
	return highest + 1
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
