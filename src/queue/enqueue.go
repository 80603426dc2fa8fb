package queue

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
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
// call, as syncfs(2) does (groupsync.Syncer).
type Syncer interface {
	Sync() error
}

// EnqueueWith is Enqueue with options; the files, their contents and the order in
// which they are made durable and linked are the same.
func EnqueueWith(q Queue, msg, env io.Reader, c Caller, o Options) error {
	if fi, err := os.Stat(q.Dir); err != nil || !fi.IsDir() {
		return fail(ExitQueueDir, "unable to use queue directory %s: %v", q.Dir, err)
	}
	if q.Split < 1 {
		return fail(ExitBug, "queue split %d", q.Split)
	}
	e := &enqueue{q: q, o: o}
	err := e.run(msg, env, c)
	if err != nil {
		e.cleanup()
	}
	return err
}

type enqueue struct {
	q              Queue
	o              Options
	pidfn          string
	messfn, intdfn string
	mess, intd     *os.File
}

func (e *enqueue) run(msg, env io.Reader, c Caller) error {
	mess, ino, err := e.openMess(c)
	if err != nil {
		return err
	}
	messfn := e.messfn

	mw := writers.Get().(*bufio.Writer)
	mw.Reset(mess)
	defer func() { mw.Reset(nil); writers.Put(mw) }()
	w := mw
	if _, err := w.WriteString(ReceivedLine(c)); err != nil {
		return fail(ExitWrite, "writing %s: %v", messfn, err)
	}
	if err := copyMessage(w, msg); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fail(ExitWrite, "writing %s: %v", messfn, err)
	}
	if e.o.Sync == nil {
		if err := mess.Sync(); err != nil {
			return fail(ExitWrite, "syncing %s: %v", messfn, err)
		}
		// Beyond qmail, which relies on synchronous directory updates: make the mess/
		// entry durable before todo/ can point at it, so that a power cut on a Linux
		// file system cannot leave a todo/ entry whose message vanished.
		if err := syncDir(filepath.Dir(messfn)); err != nil {
			return fail(ExitWrite, "syncing %s: %v", filepath.Dir(messfn), err)
		}
	}

	intdfn := e.q.Path("intd", ino)
	intd, err := e.openIntd(intdfn)
	if err != nil {
		return err
	}
	w = bufio.NewWriterSize(intd, 4096)
	fmt.Fprintf(w, "u%d\x00p%d\x00", c.UID, c.PID)
	if err := CopyEnvelope(w, bufio.NewReaderSize(env, 4096)); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fail(ExitWrite, "writing %s: %v", intdfn, err)
	}
	if e.o.Sync == nil {
		if err := intd.Sync(); err != nil {
			return fail(ExitWrite, "syncing %s: %v", intdfn, err)
		}
	} else if err := e.o.Sync.Sync(); err != nil {
		// One sync for mess/ and intd/, their data and their directory entries:
		// nothing points at them until the todo/ link, so their order does not matter.
		return fail(ExitWrite, "syncing %s and %s: %v", messfn, intdfn, err)
	}
	todofn := e.q.Path("todo", ino)
	if !c.Deadline.IsZero() && !time.Now().Before(c.Deadline) {
		return fail(ExitTimeout, "timed out before queueing the message")
	}
	if err := os.Link(intdfn, todofn); err != nil {
		return fail(ExitTodo, "unable to link %s to %s: %v", intdfn, todofn, err)
	}
	// Queued: from here on nothing may be undone; qmail-send may already be at work.
	e.mess.Close()
	e.intd.Close()
	e.mess, e.intd, e.messfn, e.intdfn = nil, nil, "", ""
	// Make the todo/ entry durable before reporting success. If that fails the message
	// stays queued but the caller hears of a failure: a possible duplicate, never a loss.
	var serr error
	if e.o.Sync == nil {
		serr = syncDir(filepath.Dir(todofn))
	} else {
		serr = e.o.Sync.Sync()
	}
	PullTrigger(e.q)
	if serr != nil {
		return fail(ExitWrite, "syncing %s: %v", filepath.Dir(todofn), serr)
	}
	return nil
}

// syncDir flushes a directory's entries to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// openMess makes the message's file in mess/ and returns it open with its inode
// number: a spare renamed into place, else a new pid/ file linked to mess/ and
// unlinked from pid/, as qmail-queue does.
func (e *enqueue) openMess(c Caller) (*os.File, uint64, error) {
	if e.o.Spares != nil {
		f, ino, p, ok, err := e.o.Spares.take(func(ino uint64) string { return e.q.Path("mess", ino) })
		if err != nil {
			return nil, 0, fail(ExitMess, "unable to move a spare file to mess/: %v", err)
		}
		if ok {
			e.mess, e.messfn = f, p
			return f, ino, nil
		}
	}
	mess, err := e.openPid(c)
	if err != nil {
		return nil, 0, err
	}
	e.mess = mess
	fi, err := mess.Stat()
	if err != nil {
		return nil, 0, fail(ExitPid, "unable to stat %s: %v", e.pidfn, err)
	}
	ino := fi.Sys().(*syscall.Stat_t).Ino
	messfn := e.q.Path("mess", ino)
	if err := os.Link(e.pidfn, messfn); err != nil {
		return nil, 0, fail(ExitMess, "unable to link %s to %s: %v", e.pidfn, messfn, err)
	}
	e.messfn = messfn
	if err := os.Remove(e.pidfn); err != nil {
		return nil, 0, fail(ExitPid, "unable to remove %s: %v", e.pidfn, err)
	}
	e.pidfn = ""
	return mess, ino, nil
}

// openIntd makes intd/<id>, which must not exist yet: a spare renamed into place,
// else a new file.
func (e *enqueue) openIntd(intdfn string) (*os.File, error) {
	if e.o.Spares != nil {
		// rename replaces silently where O_EXCL would refuse: a left-over intd/ file
		// of an earlier message with this inode number must stop us just the same.
		if _, err := os.Lstat(intdfn); err == nil {
			return nil, fail(ExitIntd, "unable to create %s: %v", intdfn, fs.ErrExist)
		}
		f, _, p, ok, err := e.o.Spares.take(func(uint64) string { return intdfn })
		if err != nil {
			return nil, fail(ExitIntd, "unable to move a spare file to %s: %v", intdfn, err)
		}
		if ok {
			e.intd, e.intdfn = f, p
			return f, nil
		}
	}
	intd, err := os.OpenFile(intdfn, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0644)
	if err != nil {
		return nil, fail(ExitIntd, "unable to create %s: %v", intdfn, err)
	}
	e.intd, e.intdfn = intd, intdfn
	return intd, nil
}

// openPid creates pid/<pid>.<time>.<seq> exclusively, seq 1..9.
func (e *enqueue) openPid(c Caller) (*os.File, error) {
	var last error
	for seq := 1; seq < 10; seq++ {
		base := fmt.Sprintf("%d.%d", c.PID, c.Time.Unix())
		if e.o.PidName != "" {
			base = e.o.PidName
		}
		fn := filepath.Join(e.q.Dir, "pid", fmt.Sprintf("%s.%d", base, seq))
		f, err := os.OpenFile(fn, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0644)
		if err == nil {
			e.pidfn = fn
			return f, nil
		}
		last = err
	}
	return nil, fail(ExitPid, "unable to create a pid file: %v", last)
}

// cleanup removes what a failed Enqueue made, truncating first so that a name that
// cannot be removed holds no partial message.
func (e *enqueue) cleanup() {
	if e.intd != nil {
		e.intd.Truncate(0)
		e.intd.Close()
	}
	if e.intdfn != "" {
		os.Remove(e.intdfn)
	}
	if e.mess != nil {
		e.mess.Truncate(0)
		e.mess.Close()
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
