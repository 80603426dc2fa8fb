package send

import (
	"bufio"
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/notqmail/notqmail/src/queue"
)

// Timing, in seconds, as in qmail-send.
const (
	sleepTodo    = 1500   // scan todo/ at least this often, trigger or not
	sleepForever = 86400  // longest wait for anything
	sleepCleanup = 76431  // between scans of mess/ for stale files
	sleepSysfail = 123    // retry delay after a file system error
	ossified     = 129600 // 36 h: a mess file this old with no info or todo is garbage
	reportMax    = 10000  // longest report accepted from a spawner
	recordMax    = 1 << 20
	// doneBatch bounds finished messages (and stat retries) handled per round of the
	// main loop, so neither waits behind the other nor starves deliveries.
	doneBatch = 64
)

// Injector queues a message, as qmail-send does with qmail-queue for bounces. qp is
// the queueing process's id, for the "bounce msg" log line.
type Injector interface {
	Inject(msg io.Reader, sender string, recips []string) (qp int, err error)
}

// Conn is a pipe pair to a helper: commands go to W, replies come from R.
type Conn struct {
	W io.Writer
	R io.Reader
}

// Daemon is qmail-send: it preprocesses todo/, schedules deliveries through the local
// and remote spawners, marks them done, bounces failures and asks qmail-clean to remove
// finished messages.
//
// All queue state lives in one goroutine (Run); helper goroutines only move bytes from
// pipes, the trigger and signals into one event channel, and a fixed pool of them
// preprocesses new messages' files (see prepare). Memory is a few small heap entries
// per queued message and a fixed number of jobs and delivery slots, so a queue of
// hundreds of thousands of messages costs megabytes, not goroutines; todo/ is read
// only as fast as deliveries need, so a backlog there costs nothing until reached.
type Daemon struct {
	Queue   queue.Queue
	Config  *Config
	Log     Logger
	Spawn   [nchan]Conn // to qmail-lspawn and qmail-rspawn
	Clean   Conn        // to qmail-clean
	Inject  Injector
	Trigger <-chan struct{}  // pulled by qmail-queue; may be nil
	Signals <-chan os.Signal // SIGTERM, SIGALRM, SIGHUP; may be nil

	concurrency [nchan]int
	used        [nchan]int
	alive       [nchan]bool
	dels        [nchan][]delivery
	dline       [nchan][]byte
	cmds        [nchan]chan []byte
	events      chan event
	masterDelID uint64
	keptFiles   int // jobs with a channel file kept open

	jobs  []job
	pass  [nchan]passState
	pqch  [nchan]prioq
	pqdon prioq
	pqerr prioq

	recent                      int64
	exitASAP, runASAP, readASAP bool
	triggered                   bool

	todoDir     *os.File
	todoNames   []string
	nextTodoRun int64

	cleanupActive bool
	cleanupTime   int64
	cleanupSub    int
	cleanupNames  []string

	spares      *spares
	commits     *commits
	prepWork    chan uint64
	prepBusy    map[uint64]bool // taken from todo/, not yet scheduled
	prepRunning int             // of those, in a worker
	fresh       [nchan]int      // preprocessed, due and not yet passed, per channel

	cc           *cleanConn
	cleanPending []cleanReq // sent to qmail-clean, in order, awaiting answers
	cleanGone    bool

	// relQueue: the working directory is the queue (as qmail-send runs), so queue
	// files are named relative to it, and each call walks two or three path
	// components instead of the whole absolute path. Set once in Run.
	relQueue bool
	logBuf   *logBuffer // Log's writer while Run runs: lines go out once per loop round
}

type job struct {
	refs    int
	id      uint64
	channel int
	retry   int64
	sender  string
	numTodo int
	hitEOF  bool
	dying   bool
	// f is the channel file its pass reads, kept open for markDone until the last
	// delivery is done (for up to keepMax jobs), so each needs no open and close.
	f *rawFile
	// noOther: preprocessing made no file for the other channel, just now, so
	// jobClose need not look for one.
	noOther bool
}

// keepMax bounds the channel files jobs keep open, well within the descriptor limit
// whatever the concurrency.
var keepMax = 128 // a variable for tests

type delivery struct {
	used  bool
	job   int
	delID uint64
	mpos  int64
	recip string
}

type passState struct {
	active bool
	id     uint64
	job    int
	f      *rawFile
	r      *bufio.Reader
	mpos   int64
}

type eventKind int

const (
	evReport eventKind = iota
	evSpawnDied
	evTrigger
	evSignal
	evPrepared
)

type event struct {
	kind    eventKind
	channel int
	data    []byte
	sig     os.Signal
	prep    prepResult
}

func now() int64 { return time.Now().Unix() }

// Run is qmail-send's main loop. It returns when told to exit (SIGTERM, or a lost
// connection to a helper) and no delivery it can still hear about is in progress.
func (d *Daemon) Run() error {
	d.relQueue = inDir(d.Queue.Dir)
	unlock, err := d.lockMutex()
	if err != nil {
		return err
	}
	defer unlock()
	if d.Log.W != nil {
		d.logBuf = &logBuffer{w: d.Log.W}
		d.Log.W = d.logBuf
		defer func() {
			d.logBuf.flush()
			d.Log.W = d.logBuf.w
			d.logBuf = nil
		}()
	}

	// Each spawner announces how many deliveries it can run at once.
	for c := 0; c < nchan; c++ {
		var b [1]byte
		if _, err := io.ReadFull(d.Spawn[c].R, b[:]); err != nil {
			d.Log.Alert("cannot start: hath the daemon spawn no fire?")
			return errors.New("no spawner")
		}
		d.concurrency[c] = min(d.Config.Concurrency[c], int(b[0]))
	}
	numJobs := d.concurrency[Local] + d.concurrency[Remote]
	d.jobs = make([]job, numJobs)
	d.events = make(chan event, 64)
	for c := 0; c < nchan; c++ {
		d.alive[c] = true
		d.dels[c] = make([]delivery, d.concurrency[c])
		d.cmds[c] = make(chan []byte, d.concurrency[c]+1)
		go d.writeCommands(c)
		go d.readReports(c)
	}
	if d.Trigger != nil {
		go func() {
			for range d.Trigger {
				d.events <- event{kind: evTrigger}
			}
		}()
	}
	if d.Signals != nil {
		go func() {
			for s := range d.Signals {
				d.events <- event{kind: evSignal, sig: s}
			}
		}()
	}

	sy, err := openSyncer(d.Queue.Dir)
	if err != nil {
		d.Log.Alert("cannot start: unable to open the queue for syncing: " + err.Error())
		return err
	}
	d.commits = newCommits(sy)
	defer d.commits.close()
	d.spares = openSpares(d.qpath(queue.SpareS), umaskedMode(), d.commits)
	defer d.spares.startTopUp(spareLowWater)()
	d.prepBusy = map[uint64]bool{}
	d.prepWork = make(chan uint64, prepMax)
	for i := 0; i < prepWorkers; i++ {
		go d.prepWorker(d.prepWork)
	}
	d.startClean()

	d.pqStart()
	d.logStatus()
	d.nextTodoRun = now()
	d.cleanupTime = now()

	for !d.exitASAP || !d.canExit() {
		d.recent = now()
		if d.runASAP {
			d.runASAP = false
			d.pqRun()
		}
		// Preprocessing reads the rewriting rules: reload them between messages.
		if d.readASAP && d.prepRunning == 0 {
			d.readASAP = false
			d.reread()
		}
		wakeup := d.recent + sleepForever
		d.passSelprep(&wakeup)
		d.todoSelprep(&wakeup)
		d.cleanupSelprep(&wakeup)

		var timeout time.Duration
		if wakeup > d.recent {
			timeout = time.Duration(wakeup-d.recent+1) * time.Second
		}
		d.flushLog()
		d.wait(timeout)

		d.recent = now()
		d.todoDo()
		d.passDo()
		d.cleanupDo()
	}
	d.pqFinish()
	for j := range d.jobs {
		if d.jobs[j].f != nil {
			d.jobs[j].f.Close() // deliveries a lost spawner will not report
			d.jobs[j].f = nil
			d.keptFiles--
		}
	}
	for c := 0; c < nchan; c++ {
		close(d.cmds[c])
	}
	close(d.prepWork)
	close(d.cc.out)
	d.Log.Exiting()
	return nil
}

func (d *Daemon) lockMutex() (func(), error) {
	f, err := os.OpenFile(d.qpath("lock/sendmutex"), os.O_WRONLY, 0)
	if err != nil {
		d.Log.Alert("cannot start: unable to open mutex")
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		d.Log.Alert("cannot start: qmail-send is already running")
		return nil, errors.New("qmail-send is already running")
	}
	return func() { f.Close() }, nil
}

// wait handles at least one event, or none if timeout passes first; a zero timeout
// only takes what is already there. It then takes every event already waiting.
func (d *Daemon) wait(timeout time.Duration) {
	if timeout > 0 {
		t := time.NewTimer(timeout)
		select {
		case ev := <-d.events:
			d.handle(ev)
		case <-d.cc.notify:
			d.cleanAnswers()
		case <-t.C:
		}
		t.Stop()
	}
	for {
		select {
		case ev := <-d.events:
			d.handle(ev)
		case <-d.cc.notify:
			d.cleanAnswers()
		default:
			return
		}
	}
}

func (d *Daemon) handle(ev event) {
	switch ev.kind {
	case evReport:
		d.delReport(ev.channel, ev.data)
	case evSpawnDied:
		if d.alive[ev.channel] {
			d.Log.Alert("oh no! lost spawn connection! dying...")
			d.alive[ev.channel] = false
			d.exitASAP = true
		}
	case evTrigger:
		d.triggered = true
	case evPrepared:
		d.prepRunning--
		d.prepared(ev.prep)
	case evSignal:
		switch ev.sig {
		case syscall.SIGTERM:
			d.exitASAP = true
		case syscall.SIGALRM:
			d.runASAP = true
		case syscall.SIGHUP:
			d.readASAP = true
		}
	}
}

// writeCommands feeds one spawner. Its buffer holds a command per free slot, so the
// main loop never blocks on a slow spawner. Commands already waiting go out in one
// write: the spawner reads a stream.
func (d *Daemon) writeCommands(c int) {
	dead := false
	var buf []byte
	for cmd := range d.cmds[c] {
		if dead {
			continue
		}
		buf = append(buf[:0], cmd...)
		buf = drainInto(buf, d.cmds[c], nil)
		if _, err := d.Spawn[c].W.Write(buf); err != nil {
			dead = true
			d.events <- event{kind: evSpawnDied, channel: c}
		}
	}
}

// drainInto appends to buf every item already waiting in ch, each followed by
// term, without waiting for more.
func drainInto[T []byte | string](buf []byte, ch <-chan T, term []byte) []byte {
	for {
		select {
		case next, ok := <-ch:
			if !ok {
				return buf
			}
			buf = append(buf, next...)
			buf = append(buf, term...)
		default:
			return buf
		}
	}
}

func (d *Daemon) readReports(c int) {
	buf := make([]byte, 2048)
	for {
		n, err := d.Spawn[c].R.Read(buf)
		if n > 0 {
			d.events <- event{kind: evReport, channel: c, data: bytes.Clone(buf[:n])}
		}
		if err != nil {
			d.events <- event{kind: evSpawnDied, channel: c}
			return
		}
	}
}

func (d *Daemon) canExit() bool {
	// Let preprocessing in flight finish, and hear whether todo/ went.
	if d.prepRunning > 0 || !d.cleanGone && len(d.cleanPending) > 0 {
		return false
	}
	for c := 0; c < nchan; c++ {
		if d.alive[c] && d.used[c] > 0 {
			return false
		}
	}
	return true
}

func (d *Daemon) logStatus() { d.Log.Status(d.used, d.concurrency, d.exitASAP) }

func (d *Daemon) reread() {
	if err := d.Config.Rewriter.Reload(d.Config.Control); err != nil {
		d.Log.Alert("unable to reread controls: " + err.Error())
	}
}

// ---- file names

// fsync flushes a file to disk; tests replace it to see what is synced, and when.
var fsync = (*os.File).Sync

// syncDir flushes a directory's entries to disk.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = fsync(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// inDir reports whether the working directory is dir.
func inDir(dir string) bool {
	here, err := os.Stat(".")
	if err != nil {
		return false
	}
	there, err := os.Stat(dir)
	return err == nil && os.SameFile(here, there)
}

// qpath names rel, a path inside the queue, for the file system calls: relative to
// the working directory when that is the queue, absolute otherwise.
func (d *Daemon) qpath(rel string) string {
	if d.relQueue {
		return rel
	}
	return filepath.Join(d.Queue.Dir, rel)
}

// fn names queue file sub/<id> (sub/<id%split>/<id> for a split directory) for the
// file system calls, as qpath does.
func (d *Daemon) fn(sub string, id uint64) string {
	b := make([]byte, 0, len(d.Queue.Dir)+len(sub)+26)
	if !d.relQueue && d.Queue.Dir != "" {
		b = append(b, d.Queue.Dir...)
		if b[len(b)-1] != '/' {
			b = append(b, '/')
		}
	}
	return string(d.appendRel(b, sub, id))
}

// rel is sub/<id> relative to the queue, for log lines.
func (d *Daemon) rel(sub string, id uint64) string {
	return string(d.appendRel(make([]byte, 0, len(sub)+24), sub, id))
}

func (d *Daemon) appendRel(b []byte, sub string, id uint64) []byte {
	b = append(b, sub...)
	b = append(b, '/')
	if queue.IsSplit(sub) {
		b = strconv.AppendUint(b, id%uint64(d.Queue.Split), 10)
		b = append(b, '/')
	}
	return strconv.AppendUint(b, id, 10)
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// getInfo returns a message's envelope sender and its birth (info/<id>'s mtime).
func (d *Daemon) getInfo(id uint64) (sender string, birth int64, ok bool) {
	f, err := openRawFile(d.fn("info", id), false, true)
	if err != nil {
		return "", 0, false
	}
	defer f.Close()
	mtime, err := f.mtime()
	if err != nil {
		return "", 0, false
	}
	rec, err := readRecord(bufio.NewReaderSize(f, 1024))
	if err != nil || len(rec) == 0 || rec[0] != 'F' {
		return "", 0, false
	}
	return string(rec[1 : len(rec)-1]), mtime, true
}

// readRecord returns the next \0-terminated record with its terminator. io.EOF means no
// complete record is left (a partial one is ignored, as qmail does).
func readRecord(r *bufio.Reader) ([]byte, error) {
	var rec []byte
	for {
		part, err := r.ReadSlice(0)
		rec = append(rec, part...)
		if err == nil {
			return rec, nil
		}
		if err == bufio.ErrBufferFull {
			if len(rec) > recordMax {
				return nil, errors.New("record too long")
			}
			continue
		}
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, err
	}
}

// ---- the clean connection (see prep.go)

func (d *Daemon) cleanDied() {
	if !d.exitASAP {
		d.Log.Alert("oh no! lost qmail-clean connection! dying...")
	}
	d.exitASAP = true
}

// ---- cleanups: mess files left behind by a crash, older than 36 hours

func (d *Daemon) cleanupSelprep(wakeup *int64) {
	if d.cleanupActive {
		*wakeup = 0
	}
	if *wakeup > d.cleanupTime {
		*wakeup = d.cleanupTime
	}
}

func (d *Daemon) cleanupDo() {
	if !d.cleanupActive {
		if d.recent < d.cleanupTime {
			return
		}
		d.cleanupActive = true
		d.cleanupSub = -1
		d.cleanupNames = nil
	}
	for len(d.cleanupNames) == 0 {
		d.cleanupSub++
		if d.cleanupSub >= d.Queue.Split {
			d.cleanupActive = false
			d.cleanupTime = d.recent + sleepCleanup
			return
		}
		names, err := readNames(d.qpath("mess/" + strconv.Itoa(d.cleanupSub)))
		if err != nil {
			d.Log.Alert("unable to opendir mess/" + strconv.Itoa(d.cleanupSub) + ", skipping")
			continue
		}
		d.cleanupNames = names
	}
	name := d.cleanupNames[0]
	d.cleanupNames = d.cleanupNames[1:]
	id, ok := parseID(name)
	if !ok || id%uint64(d.Queue.Split) != uint64(d.cleanupSub) {
		return
	}
	st, err := os.Stat(d.fn("mess", id))
	if err != nil {
		return // probably qmail-queue deleted it
	}
	if d.recent <= atime(st)+ossified {
		return
	}
	for _, sub := range []string{"info", "todo"} {
		if ok, err := exists(d.fn(sub, id)); ok || err != nil {
			return
		}
	}
	d.clean("foop/" + num(id))
}

func atime(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Atim.Sec
	}
	return fi.ModTime().Unix()
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// parseID accepts a decimal message id as qmail writes it, and nothing else.
func parseID(name string) (uint64, bool) {
	if name == "" || name[0] == '0' && len(name) > 1 {
		return 0, false
	}
	id, err := strconv.ParseUint(name, 10, 64)
	return id, err == nil
}

// ---- priority queues

type pqElt struct {
	id    uint64
	dt    int64
	fresh bool // just preprocessed, counted in Daemon.fresh until passed
	// chansGone (in pqdon): jobClose has just removed the last channel file and seen
	// the other one absent, so messDone need not stat them again.
	chansGone bool
	// info (fresh only): what preprocessing wrote to info/, so that the message's
	// first pass need not read it back. Others read info/, as qmail does.
	info *msgInfo
}

// msgInfo is what info/<id> says: the envelope sender and the message's birth (the
// file's mtime).
type msgInfo struct {
	sender string
	birth  int64
	chans  [nchan]bool // the channel files preprocessing made; the others it removed
}

type prioq []pqElt

func (q prioq) Len() int           { return len(q) }
func (q prioq) Less(i, j int) bool { return q[i].dt < q[j].dt }
func (q prioq) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *prioq) Push(x any)        { *q = append(*q, x.(pqElt)) }
func (q *prioq) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func (q *prioq) insert(e pqElt) { heap.Push(q, e) }
func (q *prioq) min() (pqElt, bool) {
	if len(*q) == 0 {
		return pqElt{}, false
	}
	return (*q)[0], true
}
func (q *prioq) delMin() { heap.Pop(q) }

// pqAdd schedules a message found in info/ at start-up (or after a stat failure):
// each channel file's mtime is the time of its next try.
func (d *Daemon) pqAdd(id uint64) {
	var fail string
	if ok, err := exists(d.fn("info", id)); err != nil {
		fail = d.fn("info", id)
	} else if !ok {
		return // someone yanking our chain
	} else if ok, err := exists(d.fn("todo", id)); err != nil {
		fail = d.fn("todo", id)
	} else if ok {
		return // preprocessing never finished; todo/ will redo it
	}
	var dt [nchan]int64
	var has [nchan]bool
	if fail == "" {
		for c := 0; c < nchan; c++ {
			st, err := os.Stat(d.fn(chanDir[c], id))
			if err == nil {
				has[c], dt[c] = true, st.ModTime().Unix()
			} else if !errors.Is(err, fs.ErrNotExist) {
				fail = d.fn(chanDir[c], id)
				break
			}
		}
	}
	if fail != "" {
		d.Log.Warning("unable to stat " + fail + "; will try again later")
		d.pqerr.insert(pqElt{id: id, dt: now() + sleepSysfail})
		return
	}
	for c := 0; c < nchan; c++ {
		if has[c] {
			d.pqch[c].insert(pqElt{id: id, dt: dt[c]})
		}
	}
	if !has[Local] && !has[Remote] {
		d.pqdon.insert(pqElt{id: id, dt: now()})
	}
}

// pqStart schedules every message in info/: crash recovery is simply starting up.
func (d *Daemon) pqStart() {
	for i := 0; i < d.Queue.Split; i++ {
		dir := filepath.Join(d.Queue.Dir, "info", strconv.Itoa(i))
		names, err := readNames(d.qpath("info/" + strconv.Itoa(i)))
		if err != nil {
			d.Log.Alert("unable to opendir " + dir + ", skipping")
			continue
		}
		for _, n := range names {
			if id, ok := parseID(n); ok && id%uint64(d.Queue.Split) == uint64(i) {
				d.pqAdd(id)
			}
		}
	}
}

// pqFinish records each message's next try in its channel file's mtime, so a restart
// keeps the retry schedule.
func (d *Daemon) pqFinish() {
	for c := 0; c < nchan; c++ {
		for _, e := range d.pqch[c] {
			t := time.Unix(e.dt, 0)
			if err := os.Chtimes(d.fn(chanDir[c], e.id), t, t); err != nil && !errors.Is(err, fs.ErrNotExist) {
				d.Log.Warning("unable to utime " + d.fn(chanDir[c], e.id) + "; message will be retried too soon")
			}
		}
	}
}

// pqRun makes every scheduled delivery due now (SIGALRM).
func (d *Daemon) pqRun() {
	for c := 0; c < nchan; c++ {
		for i := range d.pqch[c] {
			d.pqch[c][i].dt = d.recent
		}
	}
}

// ---- jobs: one message on one channel, while its recipients are being handed out

func (d *Daemon) jobAvail() bool {
	for i := range d.jobs {
		if d.jobs[i].refs == 0 {
			return true
		}
	}
	return false
}

func (d *Daemon) jobOpen(id uint64, c int) int {
	for i := range d.jobs {
		if d.jobs[i].refs == 0 {
			d.jobs[i] = job{refs: 1, id: id, channel: c}
			return i
		}
	}
	return -1
}

func (d *Daemon) jobClose(j int) {
	jo := &d.jobs[j]
	jo.refs--
	if jo.refs > 0 {
		return
	}
	if jo.f != nil {
		jo.f.Close()
		jo.f = nil
		d.keptFiles--
	}
	pe := pqElt{id: jo.id, dt: jo.retry}
	if jo.hitEOF && jo.numTodo == 0 {
		fn := d.fn(chanDir[jo.channel], jo.id)
		if err := d.spares.remove(fn); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.Log.Warning("unable to unlink " + fn + "; will try again later")
			pe.dt = now() + sleepSysfail
		} else {
			// chansGone lets messDone skip its own look at the channel files, only when
			// this one is known to be gone and the other known to be absent.
			gone := true
			for c := 0; c < nchan; c++ {
				if c == jo.channel || jo.noOther {
					continue
				}
				ok, err := exists(d.fn(chanDir[c], jo.id))
				if ok {
					return // the other channel finishes the message
				}
				if err != nil {
					d.Log.Warning("unable to stat " + d.fn(chanDir[c], jo.id))
					gone = false // messDone looks again, and retries if it must
					break
				}
			}
			d.pqdon.insert(pqElt{id: jo.id, dt: now(), chansGone: gone})
			return
		}
	}
	d.pqch[jo.channel].insert(pe)
}

// ---- deliveries

func (d *Daemon) delAvail(c int) bool {
	return d.alive[c] && d.used[c] < d.concurrency[c]
}

func (d *Daemon) delStart(j int, mpos int64, recip string) {
	c := d.jobs[j].channel
	if !d.alive[c] {
		return
	}
	i := 0
	for ; i < d.concurrency[c]; i++ {
		if !d.dels[c][i].used {
			break
		}
	}
	if i == d.concurrency[c] {
		return
	}
	jo := &d.jobs[j]
	d.masterDelID++
	d.dels[c][i] = delivery{used: true, job: j, delID: d.masterDelID, mpos: mpos, recip: recip}
	jo.refs++
	d.used[c]++

	id := jo.id
	messid := fmt.Sprintf("%d/%d", id%uint64(d.Queue.Split), id)
	cmd := make([]byte, 0, 4+len(messid)+len(jo.sender)+2*len(recip)+32)
	cmd = append(cmd, byte(i))
	cmd = append(cmd, messid...)
	cmd = append(cmd, 0)
	cmd = append(cmd, DeliverySender(jo.sender, recip)...)
	cmd = append(cmd, 0)
	cmd = append(cmd, recip...)
	cmd = append(cmd, 0)
	d.cmds[c] <- cmd

	d.Log.Starting(d.masterDelID, id, c, recip)
	d.logStatus()
}

// markJobDone is markDone through the channel file the job's pass kept open, if any.
func (d *Daemon) markJobDone(jo *job, pos int64) {
	if jo.f == nil {
		d.markDone(jo.channel, jo.id, pos)
		return
	}
	if err := jo.f.writeAt([]byte{'D'}, pos); err != nil {
		d.Log.Warning("trouble marking " + d.fn(chanDir[jo.channel], jo.id) + "; message will be delivered twice!")
	}
}

// markDone overwrites a recipient's T with D: it will not be delivered again.
func (d *Daemon) markDone(c int, id uint64, pos int64) {
	fn := d.fn(chanDir[c], id)
	if err := writeAtRaw(fn, []byte{'D'}, pos); err != nil {
		d.Log.Warning("trouble marking " + fn + "; message will be delivered twice!")
	}
}

// addBounce appends a failed recipient's report to bounce/<id>. The bounce must not be
// lost, so this insists, as qmail does.
//
// Beyond qmail, the record (and, for a new file, its directory entry) is on disk before
// addBounce returns: the caller then marks the recipient done, and that in-place write
// may reach the disk first, so a power cut could otherwise leave a recipient that is
// neither delivered nor bounced.
func (d *Daemon) addBounce(id uint64, recip, report string) {
	rec := BounceRecord(d.Config.Rewriter.StripVirtualPrepend(recip), report)
	fn := d.fn("bounce", id)
	for {
		f, err := os.OpenFile(fn, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0600)
		if err == nil {
			var st os.FileInfo
			if st, err = f.Stat(); err == nil {
				if _, err = f.Write(rec); err == nil {
					err = fsync(f)
				}
				if err == nil && st.Size() == 0 {
					err = syncDir(filepath.Dir(fn))
				}
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				return
			}
		}
		d.Log.Alert("unable to append to bounce message; HELP! sleeping...")
		d.flushLog()
		time.Sleep(10 * time.Second)
	}
}

const tooLong = "I'm not going to try again; this message has been in the queue too long.\n"

// delReport takes bytes from a spawner: slot byte, report, \0; several may arrive
// together or one may arrive in pieces.
func (d *Daemon) delReport(c int, data []byte) {
	for _, ch := range data {
		if len(d.dline[c]) < reportMax {
			d.dline[c] = append(d.dline[c], ch)
		} else {
			d.dline[c][reportMax-1] = ch // keep the terminator; the spawner should keep it short
		}
		if ch != 0 || len(d.dline[c]) <= 1 {
			continue
		}
		line := d.dline[c]
		d.dline[c] = nil
		slot := int(line[0])
		if slot >= d.concurrency[c] || !d.dels[c][slot].used {
			d.Log.Warning("internal error: delivery report out of range")
			continue
		}
		del := &d.dels[c][slot]
		jo := &d.jobs[del.job]
		kind, text := byte(0), ""
		if len(line) > 2 {
			kind, text = line[1], string(line[2:len(line)-1])
		}
		if kind == 'Z' && jo.dying {
			kind = 'D'
			text += tooLong
		}
		d.Log.Result(del.delID, kind, text)
		switch kind {
		case 'K':
			d.markJobDone(jo, del.mpos)
			jo.numTodo--
		case 'D':
			d.addBounce(jo.id, del.recip, text)
			d.markJobDone(jo, del.mpos)
			jo.numTodo--
		}
		d.jobClose(del.job)
		*del = delivery{}
		d.used[c]--
		d.logStatus()
	}
}

// ---- passes: reading a channel file, handing its T records to the spawner

func (d *Daemon) passSelprep(wakeup *int64) {
	if d.exitASAP {
		return
	}
	for c := 0; c < nchan; c++ {
		if d.pass[c].active && d.delAvail(c) {
			*wakeup = 0
			return
		}
	}
	if d.jobAvail() {
		for c := 0; c < nchan; c++ {
			if !d.pass[c].active {
				if pe, ok := d.pqch[c].min(); ok && *wakeup > pe.dt {
					*wakeup = pe.dt
				}
			}
		}
	}
	if pe, ok := d.pqerr.min(); ok && *wakeup > pe.dt {
		*wakeup = pe.dt
	}
	if pe, ok := d.pqdon.min(); ok && *wakeup > pe.dt {
		*wakeup = pe.dt
	}
}

func (d *Daemon) passDo() {
	for c := 0; c < nchan; c++ {
		// Hand out several records per round; each is cheap, and the loop stops as soon
		// as the channel is full.
		for n := 0; n < 64 && d.passDoChan(c); n++ {
		}
	}
	for n := 0; n < doneBatch; n++ {
		pe, ok := d.pqerr.min()
		if !ok || pe.dt > d.recent {
			break
		}
		d.pqerr.delMin()
		d.pqAdd(pe.id)
	}
	for n := 0; n < doneBatch; n++ {
		pe, ok := d.pqdon.min()
		if !ok || pe.dt > d.recent {
			break
		}
		d.pqdon.delMin()
		d.messDone(pe.id, pe.chansGone)
	}
}

// passDoChan makes one step of channel c's pass; it reports whether another step could
// make progress right away.
func (d *Daemon) passDoChan(c int) bool {
	if d.exitASAP {
		return false
	}
	p := &d.pass[c]
	if !p.active {
		// A held channel (concurrency 0) must not take a job the other one needs.
		if d.concurrency[c] == 0 || !d.jobAvail() {
			return false
		}
		pe, ok := d.pqch[c].min()
		if !ok || pe.dt > d.recent {
			return false
		}
		d.pqch[c].delMin()
		if pe.fresh {
			d.fresh[c]--
			pe.fresh = false
		}
		fn := d.fn(chanDir[c], pe.id)
		// Read-write: the job may keep it for markDone.
		f, err := openRawFile(fn, true, true)
		if err != nil {
			d.passTrouble(c, pe, fn)
			return false
		}
		var sender string
		var birth int64
		noOther := false
		if pe.info != nil {
			sender, birth, ok = pe.info.sender, pe.info.birth, true
			noOther = !pe.info.chans[1-c]
		} else {
			sender, birth, ok = d.getInfo(pe.id)
		}
		if !ok {
			f.Close()
			d.passTrouble(c, pe, fn)
			return false
		}
		j := d.jobOpen(pe.id, c)
		*p = passState{active: true, id: pe.id, job: j, f: f, r: bufio.NewReaderSize(f, 4096)}
		jo := &d.jobs[j]
		jo.retry = NextRetry(birth, d.recent, c)
		// Not birth+Lifetime, which overflows for a huge control/queuelifetime.
		jo.dying = d.recent-birth > d.Config.Lifetime
		jo.sender = sender
		jo.noOther = noOther
		if d.keptFiles < keepMax {
			jo.f = f // deliveries mark their recipients through it
			d.keptFiles++
		}
	}
	if !d.delAvail(c) {
		return false
	}
	rec, err := readRecord(p.r)
	if err == io.EOF {
		d.jobs[p.job].hitEOF = true
		d.passEnd(c)
		return true
	}
	if err != nil {
		d.Log.Warning("trouble reading " + d.fn(chanDir[c], p.id) + "; will try again later")
		d.passEnd(c)
		return false
	}
	switch rec[0] {
	case 'T':
		d.jobs[p.job].numTodo++
		d.delStart(p.job, p.mpos, string(rec[1:len(rec)-1]))
	case 'D':
	default:
		d.Log.Warning("unknown record type in " + d.fn(chanDir[c], p.id) + "!")
		d.passEnd(c)
		return false
	}
	p.mpos += int64(len(rec))
	return true
}

func (d *Daemon) passEnd(c int) {
	p := &d.pass[c]
	if d.jobs[p.job].f != p.f {
		p.f.Close()
	} // else the job closes it when its last delivery is done
	d.jobClose(p.job)
	*p = passState{}
}

func (d *Daemon) passTrouble(c int, pe pqElt, fn string) {
	d.Log.Warning("trouble opening " + fn + "; will try again later")
	d.pqch[c].insert(pqElt{id: pe.id, dt: d.recent + sleepSysfail})
}

// messDone finishes a message whose channel files are gone: it queues the bounce, if
// any, then removes info/ and asks qmail-clean to remove the message.
//
// Like qmail, it first makes sure no channel file or todo/ entry is left. chansGone
// says jobClose has just checked the channel files (removing the last one and
// finding the other absent), so they are not statted again: only preprocessing
// creates them, and only from a todo/ entry, which is still checked.
func (d *Daemon) messDone(id uint64, chansGone bool) {
	fail := func() { d.pqdon.insert(pqElt{id: id, dt: now() + sleepSysfail}) }
	for c := 0; c < nchan && !chansGone; c++ {
		ok, err := exists(d.fn(chanDir[c], id))
		if ok {
			return // false alarm
		}
		if err != nil {
			d.Log.Warning("unable to stat " + d.fn(chanDir[c], id) + "; will try again later")
			fail()
			return
		}
	}
	if ok, err := exists(d.fn("todo", id)); ok {
		return
	} else if err != nil {
		d.Log.Warning("unable to stat " + d.fn("todo", id) + "; will try again later")
		fail()
		return
	}
	if ok, err := exists(d.fn("info", id)); !ok {
		if err != nil {
			d.Log.Warning("unable to stat " + d.fn("info", id) + "; will try again later")
			fail()
		}
		return
	}
	if !d.injectBounce(id) {
		fail()
		return
	}
	d.Log.EndMsg(id)
	if err := d.spares.remove(d.fn("info", id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.Log.Warning("unable to unlink " + d.fn("info", id) + "; will try again later")
		fail()
		return
	}
	d.clean("foop/" + num(id))
}

// injectBounce queues the bounce for message id if bounce/<id> exists, then removes it.
func (d *Daemon) injectBounce(id uint64) bool {
	// Unlike qmail, look for the bounce before reading info/: most messages have none,
	// and the sender is needed only for one.
	bfn := d.fn("bounce", id)
	if ok, err := exists(bfn); !ok {
		if err != nil {
			d.Log.Warning("unable to stat " + bfn)
			return false
		}
		return true
	}
	sender, _, ok := d.getInfo(id)
	if !ok {
		return false
	}
	// owner-@host-@[] -> owner-@host
	if len(sender) >= 5 && sender[len(sender)-4:] == "-@[]" {
		sender = sender[:len(sender)-4]
	}
	if sender == "#@[]" {
		d.Log.TripleBounce(d.rel("bounce", id))
	} else {
		records, err := os.Open(bfn)
		if err != nil {
			d.Log.Warning("trouble injecting bounce message, will try later")
			return false
		}
		defer records.Close()
		orig, err := os.Open(d.fn("mess", id))
		if err != nil {
			d.Log.Warning("trouble injecting bounce message, will try later")
			return false
		}
		defer orig.Close()
		spec := BounceSpec{Sender: sender, BounceFrom: d.Config.BounceFrom, BounceHost: d.Config.BounceHost,
			DoubleTo: d.Config.DoubleBounceTo, Date: time.Now()}
		from, to := spec.Envelope()
		qp, err := d.Inject.Inject(spec.Message(records, orig), from, []string{to})
		if err != nil {
			d.Log.Warning("trouble injecting bounce message, will try later")
			return false
		}
		d.Log.BounceMsg(id, uint64(qp))
	}
	if err := os.Remove(bfn); err != nil {
		d.Log.Warning("unable to unlink " + bfn)
		return false
	}
	return true
}

// ---- todo: preprocessing newly queued messages

func (d *Daemon) todoSelprep(wakeup *int64) {
	if !d.wantTodo() {
		return
	}
	// A pull that came while todo/ was being read may be for an entry the read had
	// passed: read it again at once.
	if d.todoDir != nil || d.triggered {
		*wakeup = 0
	}
	if *wakeup > d.nextTodoRun {
		*wakeup = d.nextTodoRun
	}
}

// todoDo hands entries of todo/ to the preprocessing workers while wantTodo says so,
// if it is time to scan todo/.
func (d *Daemon) todoDo() {
	for d.wantTodo() {
		if d.todoDir == nil {
			if !d.triggered && d.recent < d.nextTodoRun {
				return
			}
			d.triggered = false
			f, err := os.Open(d.qpath("todo"))
			if err != nil {
				d.Log.Alert("unable to opendir todo, sleeping...")
				d.flushLog()
				time.Sleep(10 * time.Second)
				return
			}
			d.todoDir = f
			d.todoNames = nil
			d.nextTodoRun = d.recent + sleepTodo
		}
		if len(d.todoNames) == 0 {
			names, err := d.todoDir.Readdirnames(64)
			if err != nil || len(names) == 0 {
				d.todoDir.Close()
				d.todoDir = nil
				return
			}
			d.todoNames = names
		}
		name := d.todoNames[0]
		d.todoNames = d.todoNames[1:]
		// An entry still being preprocessed from an earlier scan is skipped.
		if id, ok := parseID(name); ok && !d.prepBusy[id] {
			d.prepBusy[id] = true
			d.prepRunning++
			d.prepWork <- id
		}
	}
}

// leadingNumber reads a decimal number at the start of s, as qmail's scan_ulong does.
func leadingNumber(s string) uint64 {
	var n uint64
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + uint64(s[i]-'0')
	}
	return n
}
