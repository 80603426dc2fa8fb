package queue

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/notqmail/notqmail/src/groupsync"
)

// qmail-queue's exit codes (qmail-queue(8)); every code not listed is temporary.
const (
	ExitOK          = 0
	ExitAddrTooLong = 11 // permanent
	ExitRefused     = 31 // permanent refusal, for QMAILQUEUE replacements
	ExitNoMem       = 51
	ExitTimeout     = 52
	ExitWrite       = 53 // write error or disk full
	ExitRead        = 54 // unable to read the message or envelope
	ExitConfig      = 55
	ExitNetwork     = 56
	ExitHome        = 61
	ExitQueueDir    = 62
	ExitPid         = 63
	ExitMess        = 64
	ExitIntd        = 65
	ExitTodo        = 66
	ExitBug         = 81
	ExitCustom      = 82 // replacement wrote a D/Z message on fd 6
	ExitEnvelope    = 91
)

// MaxAddr is qmail-queue's ADDR: an envelope address, with its terminating NUL, must
// be shorter than this, so the longest address accepted is MaxAddr-1 bytes.
const MaxAddr = 1003

// Death is qmail-queue's lifetime: it gives up (exit 52) after this long, which must
// stay below qmail-send's 36 hours after which stale queue files are removed.
const Death = 24 * time.Hour

// ExitError is a queueing failure with the qmail-queue exit code it maps to.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return fmt.Sprintf("%v (exit %d)", e.Err, e.Code) }
func (e *ExitError) Unwrap() error { return e.Err }

func fail(code int, format string, a ...any) error {
	return &ExitError{Code: code, Err: fmt.Errorf(format, a...)}
}

// Code returns the exit code for an error from Enqueue: 0 for nil, ExitBug for an
// error that carries no code.
func Code(err error) int {
	if err == nil {
		return ExitOK
	}
	var e *ExitError
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitBug
}

// Caller describes who queues the message, for the Received line and the envelope's
// u and p records.
type Caller struct {
	UID     int       // the real uid of the caller
	PID     int       // the queueing process (qmail-queue's own pid)
	Invoked string    // "by alias", "from network", "for bounce" or "by uid N"
	Time    time.Time // start time: names the pid file and dates the Received line
	// Deadline, when set, is the end of the queueing process's life (Time+Death):
	// Enqueue does not link a message into todo/ at or after it. qmail-send removes
	// stale mess/ and intd/ files by age alone, so a qmail-queue that has been stopped
	// (SIGSTOP, a suspended machine) past it must not queue a message whose files
	// may be removed under it. Its timer alone cannot promise that: it may fire just
	// after the link instead of before.
	Deadline time.Time
}

// Invoked returns the Received line's description of a caller uid: "by alias",
// "from network" (qmaild), "for bounce" (qmails), else "by uid N". In sandbox mode
// every qmail user shares one uid, so pass sandbox=true to always get "by uid N".
func Invoked(uid, alias, qmaild, qmails int, sandbox bool) string {
	switch {
	case sandbox:
	case uid == alias:
		return "by alias"
	case uid == qmaild:
		return "from network"
	case uid == qmails:
		return "for bounce"
	}
	return "by uid " + strconv.Itoa(uid)
}

// ReceivedLine is qmail-queue's trace line, ending in a newline:
// "Received: (qmail 1234 invoked by uid 0); 5 Jan 2026 01:02:03 -0000".
func ReceivedLine(c Caller) string {
	t := c.Time.UTC()
	return fmt.Sprintf("Received: (qmail %d invoked %s); %d %s %d %02d:%02d:%02d -0000\n",
		c.PID, c.Invoked, t.Day(), t.Month().String()[:3], t.Year(), t.Hour(), t.Minute(), t.Second())
}

// Enqueue queues one message the way qmail-queue does: the message from msg, the
// envelope (F sender, T recipients, an extra NUL) from env. It returns nil once the
// message is in todo/, and on any failure removes what it made, so a failed call leaves
// no trace. A crash at any point leaves either nothing reachable from todo/ or a
// complete message: the message (and its mess/ directory entry) is fsynced before
// intd/ is written, intd/ is fsynced before it is linked into todo/, and the todo/
// entry is synced before Enqueue reports success.
func Enqueue(q Queue, msg, env io.Reader, c Caller) error {
	return EnqueueWith(q, msg, env, c, Options{})
}

// Options changes how EnqueueWith makes a message's files.
type Options struct {
	// Spares, when set, supplies the mess/ and intd/ files from spare/q instead of
	// new inodes: a spare is renamed straight to mess/<split>/<its inode number>, so no
	// pid/ file is needed, and another to intd/<id>. Without a usable spare the files
	// are created as Enqueue creates them.
	Spares *Spares
	// PidName, when set, names the pid/ file (PidName.seq) instead of the caller's pid
	// and start time: a service queues for many callers at once, and their pids and
	// start seconds may repeat.
	PidName string
	// Sync, when set, makes the message durable by group commit instead of an fsync
	// of each file and directory: one Sync after mess/ and intd/ are written (before
	// the todo/ link) and one after the link (before success is reported). A
	// long-running writer shares it between concurrent messages (groupsync.Syncer),
	// so that one flush of the disk serves them all; a lone qmail-queue has nobody to
	// share with and fsyncs its own files.
	Sync Syncer
}

// Syncer makes durable everything written to the queue's file system before the
// call, as syncfs(2) does (groupsync.Syncer). EnqueueWith takes a Mark before it
// writes anything and passes it to each SyncSince, which fails if a sync that may
// have written back the message's data failed, even one run for another caller.
type Syncer interface {
	Mark() groupsync.Mark
	SyncSince(groupsync.Mark) error
}

// EnqueueWith is Enqueue with options; the files, their contents and the order in
// which they are made durable and linked are the same.
func EnqueueWith(q Queue, msg, env io.Reader, c Caller, o Options) error {
	// The working directory (".", a long-running writer's) needs no look: it is there
	// while we are in it.
	if q.Dir != "." {
		if fi, err := os.Stat(q.Dir); err != nil || !fi.IsDir() {
			return fail(ExitQueueDir, "unable to use queue directory %s: %v", q.Dir, err)
		}
	}
	if q.Split < 1 {
		return fail(ExitBug, "queue split %d", q.Split)
	}
	e := &enqueue{q: q, o: o}
	if o.Sync != nil {
		e.mark = o.Sync.Mark()
	}
	err := e.run(msg, env, c)
	if err != nil {
		e.cleanup()
	}
	return err
}

type enqueue struct {
	q              Queue
	o              Options
	c              Caller
	pidfn          string
	messfn, intdfn string // names made so far, removed on failure
	mess, intd     *qfile
	intdPath       string         // intd/<id>, once the id is known
	openErr        error          // why a file could not be made at its first write
	mark           groupsync.Mark // o.Sync's, taken before the first write
}

func (e *enqueue) run(msg, env io.Reader, c Caller) error {
	e.c = c
	if e.o.Spares == nil {
		// As qmail-queue: the pid/ file first, before the message is read.
		if err := e.openMess(); err != nil {
			return err
		}
	}
	mw := writers.Get().(*bufio.Writer)
	mw.Reset((*messWriter)(e))
	defer func() { mw.Reset(nil); writers.Put(mw) }()
	w := mw
	if _, err := w.WriteString(ReceivedLine(c)); err != nil {
		return e.writeErr("message", err)
	}
	if err := copyMessage(w, msg); err != nil {
		if e.openErr != nil {
			return e.openErr
		}
		return err
	}
	if err := w.Flush(); err != nil {
		return e.writeErr("message", err)
	}
	mess, messfn := e.mess, e.messfn
	// Before the sync: a crash before it leaves no todo/ entry, so old data of a
	// reused spare is never read as part of this message.
	if err := mess.trim(); err != nil {
		return fail(ExitWrite, "truncating %s: %v", messfn, err)
	}
	if e.o.Sync == nil {
		if err := mess.sync(); err != nil {
			return fail(ExitWrite, "syncing %s: %v", messfn, err)
		}
		// Beyond qmail, which relies on synchronous directory updates: make the mess/
		// entry durable before todo/ can point at it, so that a power cut on a Linux
		// file system cannot leave a todo/ entry whose message vanished.
		if err := syncDir(filepath.Dir(messfn)); err != nil {
			return fail(ExitWrite, "syncing %s: %v", filepath.Dir(messfn), err)
		}
	}

	e.intdPath = e.q.Path("intd", mess.ino)
	intdfn := e.intdPath
	iw := bufio.NewWriterSize((*intdWriter)(e), 4096)
	iw.WriteString("u" + strconv.Itoa(c.UID) + "\x00p" + strconv.Itoa(c.PID) + "\x00")
	if err := CopyEnvelope(iw, bufio.NewReaderSize(env, 4096)); err != nil {
		if e.openErr != nil {
			return e.openErr
		}
		return err
	}
	if err := iw.Flush(); err != nil {
		return e.writeErr(intdfn, err)
	}
	intd := e.intd
	if err := intd.trim(); err != nil {
		return fail(ExitWrite, "truncating %s: %v", intdfn, err)
	}
	if e.o.Sync == nil {
		if err := intd.sync(); err != nil {
			return fail(ExitWrite, "syncing %s: %v", intdfn, err)
		}
	} else if err := e.o.Sync.SyncSince(e.mark); err != nil {
		// One sync for mess/ and intd/, their data and their directory entries:
		// nothing points at them until the todo/ link, so their order does not matter.
		return fail(ExitWrite, "syncing %s and %s: %v", messfn, intdfn, err)
	}
	todofn := e.q.Path("todo", mess.ino)
	if !c.Deadline.IsZero() && !time.Now().Before(c.Deadline) {
		return fail(ExitTimeout, "timed out before queueing the message")
	}
	if err := os.Link(intdfn, todofn); err != nil {
		return fail(ExitTodo, "unable to link %s to %s: %v", intdfn, todofn, err)
	}
	// Queued: from here on nothing may be undone; qmail-send may already be at work.
	e.mess.close()
	e.intd.close()
	e.mess, e.intd, e.messfn, e.intdfn = nil, nil, "", ""
	// Make the todo/ entry durable before reporting success. If that fails the message
	// stays queued but the caller hears of a failure: a possible duplicate, never a loss.
	var serr error
	if e.o.Sync == nil {
		serr = syncDir(filepath.Dir(todofn))
	} else {
		serr = e.o.Sync.SyncSince(e.mark)
	}
	PullTrigger(e.q)
	if serr != nil {
		return fail(ExitWrite, "syncing %s: %v", filepath.Dir(todofn), serr)
	}
	return nil
}

// writeErr is the error for a failed write of what: the file's own failure (exit 64,
// 65 or 63) when it could not be made, else a write error.
func (e *enqueue) writeErr(what string, err error) error {
	if e.openErr != nil {
		return e.openErr
	}
	return fail(ExitWrite, "writing %s: %v", what, err)
}

// messWriter and intdWriter write the message's files, making each at its first
// write. A reused spare holds another message's data until it is overwritten, so it is
// taken only once there is data for it, and not while a client is still sending: then
// the old data is under a mess/ or intd/ name for as short a time as possible (qmail-
// qfix reads the writer's pid from a mess/ or intd/ file without todo/).
type (
	messWriter enqueue
	intdWriter enqueue
)

func (w *messWriter) Write(p []byte) (int, error) {
	e := (*enqueue)(w)
	if e.mess == nil {
		if e.openErr == nil {
			e.openErr = e.openMess()
		}
		if e.openErr != nil {
			return 0, e.openErr
		}
	}
	return e.mess.Write(p)
}

func (w *intdWriter) Write(p []byte) (int, error) {
	e := (*enqueue)(w)
	if e.intd == nil {
		if e.openErr == nil {
			e.openErr = e.openIntd(e.intdPath)
		}
		if e.openErr != nil {
			return 0, e.openErr
		}
	}
	return e.intd.Write(p)
}

// qfile is a queue file written from offset 0 through a bare descriptor. Not an
// *os.File: making one registers a regular file with the runtime's poller, which costs
// fcntl and (failing) epoll_ctl calls for every file.
type qfile struct {
	fd   int
	name string
	ino  uint64
	n    int64 // bytes written
	old  int64 // its size when opened: a reused spare's old data
}

func (f *qfile) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, err := syscall.Write(f.fd, p[done:])
		if n > 0 {
			done += n
			f.n += int64(n)
		}
		switch {
		case err == syscall.EINTR:
		case err != nil:
			return done, &os.PathError{Op: "write", Path: f.name, Err: err}
		case n <= 0:
			return done, io.ErrShortWrite
		}
	}
	return done, nil
}

// trim cuts the file to what has been written: a reused spare's old data beyond it
// goes. A file that is not longer is left alone (no ftruncate call).
func (f *qfile) trim() error {
	if f.old <= f.n {
		return nil
	}
	if err := syscall.Ftruncate(f.fd, f.n); err != nil {
		return err
	}
	f.old = f.n
	return nil
}

func (f *qfile) sync() error { return fsync(f.fd) }

// fsync is fsync(2), again when a signal interrupts it.
func fsync(fd int) error {
	for {
		err := syscall.Fsync(fd)
		if err != syscall.EINTR {
			return err
		}
	}
}

func (f *qfile) close() { syscall.Close(f.fd) }

// syncDir flushes a directory's entries to disk.
func syncDir(dir string) error {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	err = fsync(fd)
	syscall.Close(fd)
	if err != nil {
		return &os.PathError{Op: "sync", Path: dir, Err: err}
	}
	return nil
}

// openMess makes the message's file in mess/ and sets e.mess: a spare renamed into
// place, else a new pid/ file linked to mess/ and unlinked from pid/, as qmail-queue
// does.
func (e *enqueue) openMess() error {
	if e.o.Spares != nil {
		f, err := e.o.Spares.take(func(ino uint64) string { return e.q.Path("mess", ino) }, false)
		if err != nil {
			return fail(ExitMess, "unable to move a spare file to mess/: %v", err)
		}
		if f != nil {
			e.mess, e.messfn = f, f.name
			return nil
		}
	}
	mess, err := e.openPid()
	if err != nil {
		return err
	}
	e.mess = mess
	var st syscall.Stat_t
	if err := syscall.Fstat(mess.fd, &st); err != nil {
		return fail(ExitPid, "unable to stat %s: %v", e.pidfn, err)
	}
	mess.ino = st.Ino
	messfn := e.q.Path("mess", st.Ino)
	if err := os.Link(e.pidfn, messfn); err != nil {
		return fail(ExitMess, "unable to link %s to %s: %v", e.pidfn, messfn, err)
	}
	e.messfn = messfn
	mess.name = messfn
	if err := os.Remove(e.pidfn); err != nil {
		return fail(ExitPid, "unable to remove %s: %v", e.pidfn, err)
	}
	e.pidfn = ""
	return nil
}

// openIntd makes intd/<id>, which must not exist yet, and sets e.intd: a spare
// renamed into place (never over an existing file, as O_EXCL), else a new file.
func (e *enqueue) openIntd(intdfn string) error {
	if e.o.Spares != nil {
		f, err := e.o.Spares.take(func(uint64) string { return intdfn }, true)
		if err != nil {
			return fail(ExitIntd, "unable to create %s: %v", intdfn, err)
		}
		if f != nil {
			e.intd, e.intdfn = f, f.name
			return nil
		}
	}
	fd, err := syscall.Open(intdfn, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, 0644)
	if err != nil {
		return fail(ExitIntd, "unable to create %s: %v", intdfn, err)
	}
	e.intd, e.intdfn = &qfile{fd: fd, name: intdfn}, intdfn
	return nil
}

// openPid creates pid/<pid>.<time>.<seq> exclusively, seq 1..9.
func (e *enqueue) openPid() (*qfile, error) {
	var last error
	for seq := 1; seq < 10; seq++ {
		base := fmt.Sprintf("%d.%d", e.c.PID, e.c.Time.Unix())
		if e.o.PidName != "" {
			base = e.o.PidName
		}
		fn := filepath.Join(e.q.Dir, "pid", fmt.Sprintf("%s.%d", base, seq))
		fd, err := syscall.Open(fn, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, 0644)
		if err == nil {
			e.pidfn = fn
			return &qfile{fd: fd, name: fn}, nil
		}
		last = &os.PathError{Op: "open", Path: fn, Err: err}
	}
	return nil, fail(ExitPid, "unable to create a pid file: %v", last)
}

// cleanup removes what a failed Enqueue made, truncating first so that a name that
// cannot be removed holds no partial message.
func (e *enqueue) cleanup() {
	if e.intd != nil {
		syscall.Ftruncate(e.intd.fd, 0)
		e.intd.close()
	}
	if e.intdfn != "" {
		os.Remove(e.intdfn)
	}
	if e.mess != nil {
		syscall.Ftruncate(e.mess.fd, 0)
		e.mess.close()
	}
	if e.messfn != "" {
		os.Remove(e.messfn)
	}
	if e.pidfn != "" {
		os.Remove(e.pidfn)
	}
}

// Buffers for the message, reused across the messages of a long-running writer
// (qmail-queued) instead of 128 KiB of garbage each.
var (
	writers  = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64*1024) }}
	copyBufs = sync.Pool{New: func() any { b := make([]byte, 64*1024); return &b }}
)

// copyMessage copies the message, telling read errors (54) from write errors (53).
func copyMessage(w io.Writer, r io.Reader) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return fail(ExitWrite, "writing message: %v", err)
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fail(ExitRead, "reading message: %v", rerr)
		}
	}
}

// CopyEnvelope copies a qmail-queue envelope from r to w, checking it as qmail-queue
// does: F<sender>\0, then T<recipient>\0 records, then a lone \0 which is not copied.
// A record type other than F first or T after gives exit 91, an address of MaxAddr
// bytes or more exit 11, and end of input before the final \0 exit 54.
func CopyEnvelope(w io.ByteWriter, r io.ByteReader) error {
	get := func() (byte, error) {
		b, err := r.ReadByte()
		if err == io.EOF {
			return 0, fail(ExitRead, "envelope ends before its terminating NUL")
		}
		if err != nil {
			return 0, fail(ExitRead, "reading envelope: %v", err)
		}
		return b, nil
	}
	put := func(b byte) error {
		if err := w.WriteByte(b); err != nil {
			return fail(ExitWrite, "writing envelope: %v", err)
		}
		return nil
	}
	addr := func() error {
		for n := 0; n < MaxAddr; n++ {
			b, err := get()
			if err != nil {
				return err
			}
			if err := put(b); err != nil {
				return err
			}
			if b == 0 {
				return nil
			}
		}
		return fail(ExitAddrTooLong, "envelope address too long")
	}
	b, err := get()
	if err != nil {
		return err
	}
	if b != 'F' {
		return fail(ExitEnvelope, "envelope does not start with F")
	}
	if err := put(b); err != nil {
		return err
	}
	if err := addr(); err != nil {
		return err
	}
	for {
		b, err := get()
		if err != nil {
			return err
		}
		if b == 0 {
			return nil
		}
		if b != 'T' {
			return fail(ExitEnvelope, "envelope record starts with %q, not T", b)
		}
		if err := put(b); err != nil {
			return err
		}
		if err := addr(); err != nil {
			return err
		}
	}
}

// PullTrigger wakes qmail-send: one byte written without blocking to lock/trigger.
// Failure is harmless (nobody listening gives ENXIO; qmail-send rescans the queue
// anyway), so it is ignored, as qmail does.
func PullTrigger(q Queue) {
	// Raw syscalls: an *os.File would wait in the poller on a full FIFO, and the
	// write must never block.
	fd, err := syscall.Open(q.Trigger(), syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	syscall.Write(fd, []byte{0})
	syscall.Close(fd)
}
