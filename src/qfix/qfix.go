// Package qfix checks and repairs a qmail queue, in the spirit of queue-fix: the
// layout (directories, owners, modes, split count, the trigger FIFO, the lock files)
// and the message files (orphans and half-written leftovers, files whose name is not
// their inode number after a restore from backup, files in the wrong split
// subdirectory). It reports by default; with Fix it repairs, creates a queue from
// nothing and migrates to another split count.
//
// Safety while the MTA runs: layout repairs go through queue.Create, which only adds
// and never removes. Everything that moves or removes message files is done only
// while holding lock/sendmutex, qmail-send's single-instance lock, so qmail-send
// cannot be running and cannot start meanwhile. qmail-queue still may run at any time;
// files it is writing are recognised by the writer's process id (the pid/ file name,
// the p record of intd/, the Received line of mess/) and left alone while that process
// lives.
package qfix

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/notqmail/notqmail/src/queue"
)

// inFlightAge is how long a message file whose writer cannot be identified is taken
// to be still in the making: qmail-queue gives up after 24 hours.
const inFlightAge = 24 * time.Hour

// Options say what to check and whether to fix.
type Options struct {
	Dir         string // the queue directory
	Split       int    // wanted split count; 0 keeps the queue's own
	Fix         bool
	Owners      queue.Owners
	CheckOwners bool // compare owners (only meaningful as root)
	Now         time.Time
}

// Problem is one thing found wrong.
type Problem struct {
	Path  string // relative to the queue directory
	What  string
	Fixed bool
	Err   error // why a fix failed
}

func (p Problem) String() string {
	s := p.Path + ": " + p.What
	switch {
	case p.Fixed:
		s += ": fixed"
	case p.Err != nil:
		s += ": not fixed: " + p.Err.Error()
	}
	return s
}

// Report is the outcome of a run.
type Report struct {
	Split    int // the split count the queue has after the run
	Problems []Problem
}

// Unfixed counts the problems that remain.
func (r Report) Unfixed() int {
	n := 0
	for _, p := range r.Problems {
		if !p.Fixed {
			n++
		}
	}
	return n
}

// ErrSendRunning is returned when a fix needs qmail-send stopped and it is not.
var ErrSendRunning = errors.New("qmail-send is running (lock/sendmutex is held); stop it first")

type checker struct {
	opt    Options
	split  int
	locked bool // we hold sendmutex: qmail-send is not running
	scans  int  // strays are reported by the first scan only
	rep    *Report
}

// Run checks the queue and, with opt.Fix, repairs it. It returns an error only when
// it cannot do its job at all (unreadable queue, a fix that needs qmail-send stopped);
// problems, fixed or not, are in the report.
func Run(opt Options) (Report, error) {
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	if opt.Split < 0 {
		return Report{}, fmt.Errorf("bad split count %d", opt.Split)
	}
	rep := &Report{}
	c := &checker{opt: opt, rep: rep}

	fi, err := os.Stat(opt.Dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// whatMissing: queue.Create below makes it.
		c.problem(".", whatMissing+" (the queue directory)")
		if !opt.Fix {
			rep.Split = opt.Split
			return *rep, nil
		}
	case err != nil:
		return *rep, err
	case !fi.IsDir():
		return *rep, fmt.Errorf("%s is not a directory", opt.Dir)
	}
	existing := err == nil

	c.split = queue.DefaultSplit
	if existing {
		c.split = queue.Open(opt.Dir).Split
	}
	if opt.Split > 0 && opt.Split != c.split && existing {
		p := c.problem(".", fmt.Sprintf("split count is %d, not %d", c.split, opt.Split))
		if opt.Fix {
			// Fixed by migrate below.
			p.Fixed = true
		}
	}
	target := c.split
	if opt.Split > 0 {
		target = opt.Split
	}

	// The lock is taken in report mode too, so that a stopped qmail-send cannot start
	// midway and a report is of a queue at rest.
	if existing || opt.Fix {
		unlock, err := c.lock()
		if err != nil {
			return *rep, err
		}
		defer unlock()
		if opt.Fix && target != c.split && !c.locked {
			return *rep, ErrSendRunning
		}
	}

	if opt.Fix {
		c.checkLayout(target, existing)
	} else {
		c.checkLayout(c.split, existing)
	}
	if opt.Fix {
		if err := queue.Create(opt.Dir, target, opt.Owners); err != nil {
			return *rep, err
		}
		for i := range rep.Problems {
			p := &rep.Problems[i]
			// queue.Create sets owners only as root.
			if p.Err == nil && layoutFixable(*p) && (os.Geteuid() == 0 || !strings.HasPrefix(p.What, whatOwner)) {
				p.Fixed = true
			}
		}
	}
	if target != c.split && opt.Fix {
		if err := c.migrate(target); err != nil {
			return *rep, err
		}
	}
	if !existing && !opt.Fix {
		return *rep, nil
	}
	if err := c.checkMessages(c.split); err != nil {
		return *rep, err
	}
	rep.Split = queue.Open(opt.Dir).Split
	return *rep, nil
}

func (c *checker) problem(path, what string) *Problem {
	c.rep.Problems = append(c.rep.Problems, Problem{Path: path, What: what})
	return &c.rep.Problems[len(c.rep.Problems)-1]
}

func (c *checker) path(rel string) string { return filepath.Join(c.opt.Dir, rel) }

// lock takes qmail-send's sendmutex without waiting. It reports whether qmail-send is
// running by c.locked; a missing sendmutex is created first (qmail-send cannot run
// without it, so creating it races with nothing).
func (c *checker) lock() (func(), error) {
	mutex := c.path("lock/sendmutex")
	f, err := os.OpenFile(mutex, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) && !c.opt.Fix {
		// Reported as missing. qmail-send cannot start without it, so it is not running.
		c.locked = true
		return func() {}, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(mutex), 0750); err != nil {
			return nil, err
		}
		f, err = os.OpenFile(mutex, os.O_WRONLY|os.O_CREATE, 0600)
	}
	if err != nil {
		return nil, fmt.Errorf("unable to open %s: %w", mutex, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return func() {}, nil
		}
		return nil, fmt.Errorf("unable to lock %s: %w", mutex, err)
	}
	c.locked = true
	return func() { f.Close() }, nil
}

// needLock marks a problem unfixed because qmail-send runs, and reports whether the
// fix may go ahead.
func (c *checker) mayFix(p *Problem) bool {
	if !c.opt.Fix {
		return false
	}
	if !c.locked {
		p.Err = ErrSendRunning
		return false
	}
	return true
}

func (c *checker) fixed(p *Problem, err error) {
	if err != nil {
		p.Err = err
		return
	}
	p.Fixed = true
}

// ---- layout

func kindOK(kind byte, m fs.FileMode) bool {
	switch kind {
	case 'd':
		return m.IsDir()
	case 'p':
		return m&fs.ModeNamedPipe != 0
	}
	return m.IsRegular()
}

var kindNames = map[byte]string{'d': "a directory", 'f': "a regular file", 'p': "a FIFO"}

// Problem texts of layout faults that queue.Create repairs.
const (
	whatMissing = "missing"
	whatMode    = "mode"
	whatOwner   = "owner"
)

func layoutFixable(p Problem) bool {
	return strings.HasPrefix(p.What, whatMissing) || strings.HasPrefix(p.What, whatMode) || strings.HasPrefix(p.What, whatOwner)
}

// checkLayout compares every node with qmail's layout. Wrong types that are safe to
// replace (the trigger, tcpto, which hold no mail) are replaced under the lock so
// that queue.Create can recreate them; other wrong types stop a fix.
func (c *checker) checkLayout(split int, existing bool) {
	for _, n := range queue.Layout(split) {
		stat := os.Lstat
		if n.Rel == "" {
			stat = os.Stat // the queue may be a symlink to a bigger disk
		}
		name := n.Rel
		if name == "" {
			name = "."
		}
		fi, err := stat(c.path(n.Rel))
		if err != nil {
			if existing || n.Rel == "" {
				c.problem(name, fmt.Sprintf("%s (should be %s)", whatMissing, kindNames[n.Kind]))
			}
			continue
		}
		if !kindOK(n.Kind, fi.Mode()) {
			p := c.problem(name, fmt.Sprintf("is %s, should be %s", typeName(fi.Mode()), kindNames[n.Kind]))
			if n.Rel == "lock/trigger" || n.Rel == "lock/tcpto" {
				if c.mayFix(p) {
					c.fixed(p, os.RemoveAll(c.path(n.Rel)))
				}
			} else if c.opt.Fix {
				p.Err = errors.New("move it away by hand")
			}
			continue
		}
		if n.Rel == "lock/tcpto" && fi.Size() != queue.TcptoSize {
			// A damaged tcpto only loses remembered timeouts; qmail-remote needs its size.
			p := c.problem(name, fmt.Sprintf("is %d bytes, should be %d", fi.Size(), queue.TcptoSize))
			if c.mayFix(p) {
				c.fixed(p, os.Truncate(c.path(n.Rel), queue.TcptoSize))
			}
		}
		if fi.Mode().Perm() != n.Mode || fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
			c.problem(name, fmt.Sprintf("%s is %04o, should be %04o", whatMode, fi.Mode().Perm()|extraBits(fi.Mode()), n.Mode))
		}
		if c.opt.CheckOwners {
			st := fi.Sys().(*syscall.Stat_t)
			if int(st.Uid) != n.Owner(c.opt.Owners) || int(st.Gid) != c.opt.Owners.Qmail {
				c.problem(name, fmt.Sprintf("%s is %d:%d, should be %d:%d", whatOwner, st.Uid, st.Gid, n.Owner(c.opt.Owners), c.opt.Owners.Qmail))
			}
		}
	}
}

func extraBits(m fs.FileMode) fs.FileMode {
	var b fs.FileMode
	if m&fs.ModeSetuid != 0 {
		b |= 04000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 02000
	}
	if m&fs.ModeSticky != 0 {
		b |= 01000
	}
	return b
}

func typeName(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "a regular file"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	}
	return "a " + m.Type().String() + " node"
}

// ---- messages

// file is one message file found in the queue.
type file struct {
	sub string // mess, info, ...
	dir int    // split subdirectory, -1 for unsplit
	id  uint64
	fi  fs.FileInfo
}

func (f file) rel() string {
	if f.dir < 0 {
		return f.sub + "/" + strconv.FormatUint(f.id, 10)
	}
	return fmt.Sprintf("%s/%d/%d", f.sub, f.dir, f.id)
}

type scan struct {
	files map[string]map[uint64][]file // sub -> id -> files (more than one if misplaced twice)
}

func (s scan) has(sub string, id uint64) bool { return len(s.files[sub][id]) > 0 }

var messageDirs = []string{"mess", "info", "local", "remote", "todo", "intd", "bounce", "pid"}

// scanQueue lists every message file, reporting entries that have no place in the
// queue (names that are not numbers, directories where files belong).
func (c *checker) scanQueue() (scan, error) {
	c.scans++
	s := scan{files: map[string]map[uint64][]file{}}
	for _, sub := range messageDirs {
		s.files[sub] = map[uint64][]file{}
		if sub == "pid" {
			continue // pid/ names are not ids; see checkPid
		}
		if queue.IsSplit(sub) {
			ents, err := readDir(c.path(sub))
			if err != nil {
				return s, err
			}
			for _, e := range ents {
				n, ok := number(e.Name())
				if !ok || !e.IsDir() {
					c.stray(sub + "/" + e.Name())
					continue
				}
				if err := c.scanDir(s, sub, int(n)); err != nil {
					return s, err
				}
			}
			continue
		}
		if err := c.scanDir(s, sub, -1); err != nil {
			return s, err
		}
	}
	return s, nil
}

func (c *checker) scanDir(s scan, sub string, dir int) error {
	rel := sub
	if dir >= 0 {
		rel = sub + "/" + strconv.Itoa(dir)
	}
	ents, err := readDir(c.path(rel))
	if err != nil {
		return err
	}
	for _, e := range ents {
		id, ok := number(e.Name())
		fi, ferr := e.Info()
		if ferr != nil {
			continue // removed meanwhile
		}
		if !ok || !fi.Mode().IsRegular() {
			c.stray(rel + "/" + e.Name())
			continue
		}
		s.files[sub][id] = append(s.files[sub][id], file{sub: sub, dir: dir, id: id, fi: fi})
	}
	return nil
}

// stray reports an entry that qmail never makes. It is left for the admin: it may be
// someone's notes or a backup, and nothing of qmail's reads it.
func (c *checker) stray(rel string) {
	if c.scans == 1 {
		c.problem(rel, "does not belong in the queue; move it away by hand")
	}
}

func readDir(p string) ([]fs.DirEntry, error) {
	ents, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // already reported by checkLayout
	}
	return ents, err
}

// number parses a decimal id as qmail writes it: digits only, no leading zero.
func number(s string) (uint64, bool) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, false
	}
	return n, true
}

func (c *checker) checkMessages(split int) error {
	if err := c.checkPid(); err != nil {
		return err
	}
	s, err := c.scanQueue()
	if err != nil {
		return err
	}
	if c.renumber(s, split) {
		// Renamed messages: look again with the new names.
		if s, err = c.scanQueue(); err != nil {
			return err
		}
	}
	c.placement(s, split)
	if s, err = c.scanQueue(); err != nil {
		return err
	}
	c.orphans(s, split)
	if c.opt.CheckOwners {
		if s, err = c.scanQueue(); err != nil {
			return err
		}
		c.owners(s)
	}
	return nil
}

// checkPid removes pid/ files whose qmail-queue is gone. A qmail-queue that died
// between linking its pid file into mess/ and removing it leaves both; the mess/ side
// is judged by orphans.
func (c *checker) checkPid() error {
	ents, err := readDir(c.path("pid"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		rel := "pid/" + e.Name()
		pidStr, _, _ := strings.Cut(e.Name(), ".")
		pid, ok := number(pidStr)
		if ok && alive(pid) {
			continue
		}
		if !ok {
			if fi, err := e.Info(); err != nil || c.opt.Now.Sub(fi.ModTime()) < inFlightAge {
				continue
			}
		}
		p := c.problem(rel, "left over by a qmail-queue that is gone")
		if c.mayFix(p) {
			c.fixed(p, removeFile(c.path(rel)))
		}
	}
	return nil
}

// alive reports whether a process exists (EPERM means it does, under another uid).
func alive(pid uint64) bool {
	if pid == 0 || pid > 1<<22 {
		return false
	}
	err := syscall.Kill(int(pid), 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// renumber gives every message whose mess/ file's inode is not its name (a queue
// restored from backup or copied to another disk) the name qmail-queue would have
// given it: its inode number. All of its files move together.
func (c *checker) renumber(s scan, split int) bool {
	type move struct{ from, to uint64 }
	var moves []move
	for id, fs := range s.files["mess"] {
		ino := fs[0].fi.Sys().(*syscall.Stat_t).Ino
		if len(fs) == 1 && ino != id {
			moves = append(moves, move{id, ino})
		}
	}
	sort.Slice(moves, func(i, j int) bool { return moves[i].from < moves[j].from })
	changed := false
	// A move can wait for another to free its new name: retry until no progress.
	pending := make([]int, len(moves)) // indexes: c.problem may move the slice
	for i, m := range moves {
		c.problem(fmt.Sprintf("mess/%d/%d", m.from%uint64(split), m.from),
			fmt.Sprintf("inode is %d: message %d should be %d (restored from a backup?)", m.to, m.from, m.to))
		pending[i] = len(c.rep.Problems) - 1
	}
	if !c.opt.Fix {
		return false
	}
	for progress := true; progress; {
		progress = false
		for i, m := range moves {
			p := &c.rep.Problems[pending[i]]
			if p.Fixed || !c.mayFix(p) {
				continue
			}
			if err := c.renameMessage(s, m.from, m.to, split); err != nil {
				p.Err = err
				continue
			}
			p.Fixed, p.Err = true, nil
			progress, changed = true, true
		}
	}
	return changed
}

// renameMessage moves every file of message from to the names of message to. It
// first checks that no target exists, so a message is never half renamed for that
// reason.
func (c *checker) renameMessage(s scan, from, to uint64, split int) error {
	q := queue.Queue{Dir: c.opt.Dir, Split: split}
	type mv struct{ src, dst string }
	var mvs []mv
	for _, sub := range messageDirs[:7] {
		for _, f := range s.files[sub][from] {
			dst := q.Path(sub, to)
			if _, err := os.Lstat(dst); err == nil {
				return fmt.Errorf("%s exists", q.Rel(sub, to))
			}
			mvs = append(mvs, mv{c.path(f.rel()), dst})
		}
	}
	// mess last: a crash midway leaves the message under its old name in mess/, so
	// the next run still sees the inode mismatch and finishes the move.
	sort.SliceStable(mvs, func(i, j int) bool {
		return !strings.Contains(mvs[i].src, "/mess/") && strings.Contains(mvs[j].src, "/mess/")
	})
	for _, m := range mvs {
		if err := os.Rename(m.src, m.dst); err != nil {
			return err
		}
	}
	for _, sub := range messageDirs[:7] {
		delete(s.files[sub], from)
	}
	return nil
}

// placement moves files that sit in the wrong split subdirectory (after a change of
// conf-split, or by hand) to id % split.
func (c *checker) placement(s scan, split int) {
	for _, sub := range queue.SplitDirs {
		ids := sortedIDs(s.files[sub])
		for _, id := range ids {
			for _, f := range s.files[sub][id] {
				want := int(id % uint64(split))
				if f.dir == want {
					continue
				}
				p := c.problem(f.rel(), fmt.Sprintf("belongs in %s/%d", sub, want))
				if !c.mayFix(p) {
					continue
				}
				dst := c.path(fmt.Sprintf("%s/%d/%d", sub, want, id))
				if _, err := os.Lstat(dst); err == nil {
					p.Err = fmt.Errorf("%s/%d/%d exists too; compare them by hand", sub, want, id)
					continue
				}
				c.fixed(p, os.Rename(c.path(f.rel()), dst))
			}
		}
	}
}

func sortedIDs[T any](m map[uint64]T) []uint64 {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// orphans finds message files that qmail-send would never finish with, applying
// qmail's message states (INTERNALS): a message is queued once todo/ exists, and
// preprocessed once info/ exists and todo/ is gone.
func (c *checker) orphans(s scan, split int) {
	// placement has run: every file is at id % split, or reported.
	q := queue.Queue{Dir: c.opt.Dir, Split: split}
	seen := map[uint64]bool{}
	for _, sub := range messageDirs[:7] {
		for id := range s.files[sub] {
			seen[id] = true
		}
	}
	for _, id := range sortedIDs(seen) {
		if fi, err := os.Stat(filepath.Join(c.opt.Dir, "hold", strconv.FormatUint(id, 10))); err == nil && fi.IsDir() {
			// qmail-qmaint was interrupted moving it to or from hold/: its files are
			// split between the two, and repeating the command completes the move.
			c.problem(strings.Join(presentRels(q, id), " "), fmt.Sprintf("partly held; finish with qmail-qmaint hold %d or release %d", id, id))
			continue
		}
		// States come from the file system now, not from the scan, which a running
		// qmail-queue or qmail-send may have overtaken.
		st := func(sub string) bool { _, err := os.Lstat(q.Path(sub, id)); return err == nil }
		mess, info, todo, intd := st("mess"), st("info"), st("todo"), st("intd")
		var remove []string
		var what string
		switch {
		case todo && !mess:
			what, remove = "todo/ without mess/: the message is lost", []string{"todo", "intd", "info", "local", "remote", "bounce"}
		case todo:
			continue // queued; qmail-send preprocesses it (again)
		case intd:
			// qmail-queue stopped after writing intd/ and before todo/: never queued.
			if c.writerAlive(q, id, true) || st("todo") {
				continue // still at work, or it finished meanwhile
			}
			what, remove = "intd/ without todo/: qmail-queue never finished", []string{"intd", "mess"}
			if info {
				remove = []string{"intd"} // the message itself was queued and preprocessed
			}
		case !c.locked:
			// qmail-send is running: it removes a finished message's files one by
			// one (mess/ last) and removes stale mess/ files itself, so what
			// remains would be a guess.
			continue
		case mess && !info:
			if c.writerAlive(q, id, false) || st("todo") {
				continue
			}
			what, remove = "mess/ without info/ or todo/: never queued or already finished", []string{"mess", "local", "remote", "bounce"}
		case info && !mess:
			what, remove = "info/ without mess/: the message is lost", []string{"info", "local", "remote", "bounce"}
		case !mess && !info:
			what, remove = "left over without mess/ or info/", []string{"local", "remote", "bounce"}
		default:
			continue // preprocessed; qmail-send delivers it
		}
		var rels []string
		for _, sub := range remove {
			if st(sub) {
				rels = append(rels, q.Rel(sub, id))
			}
		}
		if len(rels) == 0 {
			continue
		}
		p := c.problem(strings.Join(rels, " "), what)
		if !c.mayFix(p) {
			continue
		}
		var err error
		// mess/ last, so that a failure leaves the message's content, never a
		// dangling reference to it.
		sort.SliceStable(rels, func(i, j int) bool {
			return !strings.HasPrefix(rels[i], "mess/") && strings.HasPrefix(rels[j], "mess/")
		})
		for _, r := range rels {
			if e := removeFile(c.path(r)); e != nil && err == nil {
				err = e
			}
		}
		c.fixed(p, err)
	}
}

func presentRels(q queue.Queue, id uint64) []string {
	var rels []string
	for _, sub := range messageDirs[:7] {
		if _, err := os.Lstat(q.Path(sub, id)); err == nil {
			rels = append(rels, q.Rel(sub, id))
		}
	}
	return rels
}

// writerAlive reports whether the qmail-queue that writes message id may still be at
// work: its pid from intd/ (p record) or from the Received line it put first in
// mess/; without either, whether the file is younger than qmail-queue's time limit.
// A dead pid in intd/ is checked against mess/, which is complete before intd/ is
// made: qmail-queued makes intd/ from a spare of spare/q, which holds an old
// envelope, with an old pid, until its first write just after.
func (c *checker) writerAlive(q queue.Queue, id uint64, fromIntd bool) bool {
	found := false
	if fromIntd {
		if pid, ok := intdPid(q.Path("intd", id)); ok {
			if alive(pid) {
				return true
			}
			found = true
		}
	}
	if pid, ok := messPid(q.Path("mess", id)); ok {
		return alive(pid)
	}
	if found {
		return false
	}
	fn := q.Path("mess", id)
	if fromIntd {
		fn = q.Path("intd", id)
	}
	fi, err := os.Stat(fn)
	return err == nil && c.opt.Now.Sub(fi.ModTime()) < inFlightAge
}

func intdPid(fn string) (uint64, bool) {
	f, err := os.Open(fn)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	r := bufio.NewReader(io.LimitReader(f, 256))
	for {
		rec, err := r.ReadString(0)
		if err != nil {
			return 0, false
		}
		if strings.HasPrefix(rec, "p") {
			return number(strings.TrimSuffix(rec[1:], "\x00"))
		}
	}
}

func messPid(fn string) (uint64, bool) {
	f, err := os.Open(fn)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var buf [128]byte
	n, _ := io.ReadFull(f, buf[:])
	rest, ok := strings.CutPrefix(string(buf[:n]), "Received: (qmail ")
	if !ok {
		return 0, false
	}
	pid, _, ok := strings.Cut(rest, " ")
	if !ok {
		return 0, false
	}
	return number(pid)
}

// owners checks that message files belong to the user that writes them.
func (c *checker) owners(s scan) {
	for _, sub := range messageDirs[:7] {
		want := c.opt.Owners.Qmails
		if sub == "mess" || sub == "todo" || sub == "intd" {
			want = c.opt.Owners.Qmailq
		}
		for _, id := range sortedIDs(s.files[sub]) {
			for _, f := range s.files[sub][id] {
				st := f.fi.Sys().(*syscall.Stat_t)
				if int(st.Uid) == want {
					continue
				}
				p := c.problem(f.rel(), fmt.Sprintf("owner is %d, should be %d", st.Uid, want))
				if c.mayFix(p) {
					c.fixed(p, os.Lchown(c.path(f.rel()), want, c.opt.Owners.Qmail))
				}
			}
		}
	}
}

func removeFile(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// migrate moves every file of the split directories to id % split and removes the
// subdirectories beyond the new count. qmail-send is stopped (we hold its lock);
// qmail-queue may still add files to an old subdirectory, so removal retries until an
// empty subdirectory could be removed. A crash midway leaves files that the next run
// places, since the surviving higher subdirectories keep the detected split large.
func (c *checker) migrate(split int) error {
	for _, sub := range queue.SplitDirs {
		for round := 0; ; round++ {
			ents, err := readDir(c.path(sub))
			if err != nil {
				return err
			}
			var stale []int
			for _, e := range ents {
				n, ok := number(e.Name())
				if !ok || !e.IsDir() {
					continue
				}
				if err := c.moveAll(sub, int(n), split); err != nil {
					return err
				}
				if int(n) >= split {
					stale = append(stale, int(n))
				}
			}
			// Highest first, so the detected split shrinks only once all are gone.
			sort.Sort(sort.Reverse(sort.IntSlice(stale)))
			busy := false
			for _, n := range stale {
				err := os.Remove(c.path(fmt.Sprintf("%s/%d", sub, n)))
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					if round >= 5 {
						return fmt.Errorf("unable to remove %s/%d: %w", sub, n, err)
					}
					busy = true
					break
				}
			}
			if !busy {
				break
			}
		}
	}
	c.split = split
	return nil
}

func (c *checker) moveAll(sub string, dir, split int) error {
	rel := fmt.Sprintf("%s/%d", sub, dir)
	ents, err := readDir(c.path(rel))
	if err != nil {
		return err
	}
	for _, e := range ents {
		id, ok := number(e.Name())
		if !ok {
			continue // reported by the message scan
		}
		want := int(id % uint64(split))
		if want == dir {
			continue
		}
		dst := c.path(fmt.Sprintf("%s/%d/%d", sub, want, id))
		if _, err := os.Lstat(dst); err == nil {
			continue // reported by placement
		}
		if err := os.Rename(c.path(rel+"/"+e.Name()), dst); err != nil {
			return err
		}
	}
	return nil
}
