// Package clean is qmail-clean: at qmail-send's request it removes files that
// qmail-send (running as qmails) may not remove itself, because they belong to qmailq.
//
// Requests are "foop/<id>\0" (remove intd/<id> and mess/<split>/<id>: the message is
// finished) and "todo/<id>\0" (remove intd/<id> and todo/<id>: preprocessing is done).
// Each gets a one-byte answer: '+' done, '!' a file could not be removed, 'x' a bad
// request. Every 30 requests (and at the start) it also removes pid/ files older than
// 36 hours, left by a qmail-queue that died.
//
// Beyond qmail, Serve does not free the inodes it removes: a file whose last name goes
// is moved aside into spare/q and, once the removals are known to be on disk (every
// FlushInterval), renamed to spare/q/<inode number> (queue.Recycler), for qmail-queued
// to reuse. While requests come, spare/q may grow to queue.BurstSpares files if the
// file system has room (a drain then frees no blocks); after a FlushInterval without
// requests it is trimmed back to queue.MaxSpares, or topped up with empty spares to
// spareLowWater. A spare keeps its old contents until qmail-queued overwrites it:
// spare/q is qmailq's alone, like mess/.
// Serve's paths are relative to q.Dir: with q.Dir "." (qmail-clean runs in the queue
// directory) each file operation walks two or three components, not the whole path.
package clean

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/notqmail/notqmail/src/queue"
)

// ossified is 36 hours: longer than qmail-queue's 24-hour limit on its own life.
const ossified = 129600 * time.Second

// spareLowWater is how many empty spares Serve keeps in spare/q when idle
// (queue.SpareLowWater; tests change it).
var spareLowWater = queue.SpareLowWater

// spareTopUpPerTick bounds the empty spares Serve creates per FlushInterval when idle:
// an empty pool is full in four quiet seconds.
var spareTopUpPerTick = queue.SpareLowWater / 4

// spareRoom, when not nil, replaces the Recycler's look at the file system's room
// (tests).
var spareRoom func() bool

// spareTrimPerTick bounds the spares past queue.MaxSpares that Serve unlinks per
// FlushInterval when idle (queue.TrimPerTick; tests change it).
var spareTrimPerTick = queue.TrimPerTick

// FlushInterval is how often Serve makes spares of the files it has moved aside.
const FlushInterval = time.Second

// maxRequest is the longest request qmail-clean accepts, as in qmail.
const maxRequest = 100

// Serve answers requests from r on w until r ends. It returns nil at end of input and an
// error only when an answer cannot be written.
func Serve(q queue.Queue, r io.Reader, w io.Writer) error {
	br := bufio.NewReaderSize(r, 256)
	rec := &queue.Recycler{Q: q, Room: spareRoom}
	rec.Recover()
	stop, stopped := make(chan struct{}), make(chan struct{})
	var lastReq atomic.Int64 // when the last request came (UnixNano)
	lastReq.Store(time.Now().UnixNano())
	quiet := func() bool { return time.Since(time.Unix(0, lastReq.Load())) >= FlushInterval }
	go func() {
		defer close(stopped)
		t := time.NewTicker(FlushInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				rec.Flush()
				// Creates cost the file system as much as the ones they save, so they
				// wait for a quiet spell: at the start of a drain of a backlog they
				// would only compete with the removals, which fill spare/q anyway.
				// So do the unlinks that give a pool grown by a drain back.
				if quiet() {
					if rec.Trim(spareTrimPerTick, quiet) == 0 {
						rec.TopUp(spareLowWater, spareTopUpPerTick)
					}
				}
			case <-stop:
				return
			}
		}
	}()
	defer func() {
		close(stop)
		<-stopped
		// qmail-send has gone: nothing it removes can follow any more.
		rec.Flush()
		rec.Flush()
	}()
	loop := 0
	for {
		if loop > 0 {
			loop--
		} else {
			CleanPids(q, time.Now())
			loop = 30
		}
		req, err := readRequest(br)
		if err != nil {
			return nil
		}
		lastReq.Store(time.Now().UnixNano())
		ans := handle(q, rec, req)
		if _, err := w.Write([]byte{ans}); err != nil {
			return err
		}
	}
}

// readRequest reads one \0-terminated request; an overlong one is returned truncated
// (past maxRequest), which Handle rejects, and the rest of it is skipped.
func readRequest(br *bufio.Reader) (string, error) {
	var b []byte
	for {
		c, err := br.ReadByte()
		if err != nil {
			return "", err
		}
		if c == 0 {
			return string(b), nil
		}
		if len(b) <= maxRequest {
			b = append(b, c)
		}
	}
}

// Handle carries out one request (without its \0) and returns the answer byte. It
// unlinks the files, as qmail-clean does; Serve recycles them instead.
func Handle(q queue.Queue, req string) byte { return handle(q, nil, req) }

func handle(q queue.Queue, rec *queue.Recycler, req string) byte {
	if len(req)+1 < 7 || len(req)+1 > maxRequest {
		return 'x'
	}
	var prefix string
	switch {
	case len(req) > 5 && req[:5] == "foop/":
		prefix = "foop"
	case len(req) > 5 && req[:5] == "todo/":
		prefix = "todo"
	default:
		return 'x'
	}
	digits := req[5:]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 'x'
		}
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 'x'
	}
	intd, other := q.Path("intd", id), ""
	if prefix == "foop" {
		other = q.Path("mess", id)
	} else {
		other = q.Path("todo", id)
	}
	switch {
	case rec == nil:
		if queue.Remove(intd) != nil || queue.Remove(other) != nil {
			return '!'
		}
	case prefix == "todo":
		// intd/ and todo/ are one file: todo/ goes first, so that intd/ is its last
		// name and can be recycled. intd/ without todo/ is harmless: it goes with the
		// message.
		if queue.Remove(other) != nil || rec.Recycle(intd) != nil {
			return '!'
		}
	default:
		// mess/<split>/<id> is named by its inode number: no need to look at it.
		if rec.Recycle(intd) != nil || rec.RecycleInode(other, id) != nil {
			return '!'
		}
	}
	return '+'
}

// CleanPids removes pid/ files whose last access is more than 36 hours before now.
func CleanPids(q queue.Queue, now time.Time) {
	dir := filepath.Join(q.Dir, "pid")
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(256)
		for _, n := range names {
			p := filepath.Join(dir, n)
			fi, err := os.Stat(p)
			if err != nil {
				continue
			}
			at := fi.ModTime()
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				at = time.Unix(st.Atim.Sec, st.Atim.Nsec)
			}
			if now.Before(at.Add(ossified)) {
				continue
			}
			os.Remove(p)
		}
		if err != nil || len(names) == 0 {
			return
		}
	}
}
