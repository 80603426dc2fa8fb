package send

import (
	"bufio"
	"io"
	"os"
	"sync"
	"syscall"
)

// Preprocessing runs beside the main loop: up to prepMax messages at once are read
// from todo/ and written to info/, local/ and remote/ by prepWorkers goroutines, so
// one sync covers many of them (commits) and deliveries go on meanwhile. The main loop alone logs,
// schedules and talks to qmail-clean.
const (
	// A sync takes milliseconds on a loaded disk, so many messages must share one
	// for preprocessing to keep up with deliveries.
	prepWorkers = 64
	// prepMax bounds messages taken from todo/ and not yet scheduled: in a worker,
	// or waiting for qmail-clean to remove todo/.
	prepMax = 128
	// freshSlack is added to twice a channel's concurrency to give freshMax.
	freshSlack = 16
)

// prepResult is what a worker hands back: the log lines to write, in qmail's order,
// and whether the message is ready for todo/ to go.
type prepResult struct {
	id      uint64
	newMsg  bool // info/ was created: "new msg"
	info    bool // the F record was read: "info msg"
	size    int64
	sender  string
	pid     uint64 // the u and p records read so far
	uid     uint64
	infoPid uint64 // and as they were at the F record
	infoUid uint64
	warning string // non-empty: preprocessing failed; todo/ stays for the next scan
	chans   [nchan]bool
	birth   int64 // info/'s mtime as written (with info: the first pass needs no read)
}

// prepWorker preprocesses the messages sent on work until it is closed.
func (d *Daemon) prepWorker(work <-chan uint64) {
	for id := range work {
		r := d.prepare(id)
		d.events <- event{kind: evPrepared, prep: r}
	}
}

// prepare turns todo/<id> into info/<id>, local/<id> and remote/<id>, all durable,
// directory entries included, when it returns without a warning. It touches no
// scheduling state: the main loop asks qmail-clean to remove todo/<id> afterwards.
// A crash anywhere in between leaves todo/ in place, and the next run starts over.
func (d *Daemon) prepare(id uint64) (res prepResult) {
	res.id = id
	// Not noatime: todo/ files are qmailq's, and would refuse it.
	todo, err := openRawFile(d.fn("todo", id), false, false)
	if err != nil {
		res.warning = "unable to open " + d.rel("todo", id)
		return
	}
	defer todo.Close()
	st, err := os.Stat(d.fn("mess", id))
	if err != nil {
		res.warning = "unable to stat " + d.rel("mess", id)
		return
	}
	res.size = st.Size()
	// The mark of the sync below, taken before this message's first change.
	since := d.commits.begin()
	// Files left by an interrupted run go, as in qmail. They are rare, so they are
	// unlinked rather than kept as spares: one system call for the usual absent file.
	for _, sub := range []string{"local", "remote", "info"} {
		if err := syscall.Unlink(d.fn(sub, id)); err != nil && err != syscall.ENOENT {
			res.warning = "unable to unlink " + d.rel(sub, id)
			return
		}
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	create := func(sub string) *os.File {
		f, err := d.spares.create(d.fn(sub, id))
		if err != nil {
			res.warning = "unable to create " + d.rel(sub, id)
			return nil
		}
		files = append(files, f)
		return f
	}
	info := create("info")
	if info == nil {
		return
	}
	res.newMsg = true

	var chanBuf [nchan]*bufio.Writer
	var chanFile [nchan]*os.File
	var infoLen int64
	var chanLen [nchan]int64 // what is written to each file, for trimTo
	r := bufio.NewReaderSize(todo, 4096)
	for {
		rec, err := readRecord(r)
		if err == io.EOF {
			break
		}
		if err != nil {
			res.warning = "trouble reading " + d.rel("todo", id)
			return
		}
		if len(rec) < 2 {
			// An empty record (a stray NUL) is no record type at all: leave the
			// message in todo/ with a warning, as qmail does with unknown types.
			res.warning = "unknown record type in " + d.rel("todo", id)
			return
		}
		body := string(rec[1 : len(rec)-1])
		switch rec[0] {
		case 'u':
			res.uid = leadingNumber(body)
		case 'p':
			res.pid = leadingNumber(body)
		case 'F':
			if _, err := info.Write(rec); err != nil {
				res.warning = "trouble writing to " + d.rel("info", id)
				return
			}
			infoLen += int64(len(rec))
			// qmail logs at the F record, with the u and p records read so far.
			if !res.info {
				res.info, res.sender = true, body
				res.infoPid, res.infoUid = res.pid, res.uid
			}
		case 'T':
			addr, local := d.Config.Rewriter.Rewrite(body)
			c := Remote
			if local {
				c = Local
			}
			if chanFile[c] == nil {
				if chanFile[c] = create(chanDir[c]); chanFile[c] == nil {
					return
				}
				chanBuf[c] = bufio.NewWriterSize(chanFile[c], 1024)
			}
			chanBuf[c].WriteByte('T')
			chanBuf[c].WriteString(addr)
			chanBuf[c].WriteByte(0)
			chanLen[c] += int64(len(addr)) + 2
		default:
			res.warning = "unknown record type in " + d.rel("todo", id)
			return
		}
	}
	if err := trimTo(info, infoLen, &res.birth); err != nil {
		res.warning = "trouble writing to " + d.rel("info", id)
		return
	}
	for c := 0; c < nchan; c++ {
		if chanFile[c] == nil {
			continue
		}
		err := chanBuf[c].Flush()
		if err == nil {
			err = trimTo(chanFile[c], chanLen[c], nil)
		}
		if err != nil {
			res.warning = "trouble writing to " + d.rel(chanDir[c], id)
			return
		}
	}
	// One sync of the file system, shared with the other workers, puts the files and
	// (beyond qmail, which relies on synchronous directory updates) their new
	// entries on disk before todo/<id> goes: a power cut must not leave neither.
	if err := d.commits.sync(since); err != nil {
		res.warning = "trouble syncing " + d.rel("info", id) + ": " + err.Error()
		return
	}
	for c := 0; c < nchan; c++ {
		res.chans[c] = chanFile[c] != nil
	}
	return
}

// prepared takes a worker's result in the main loop: it writes the log lines and,
// if the message is ready, asks qmail-clean to remove todo/<id>; the message is
// scheduled when qmail-clean says it has.
func (d *Daemon) prepared(r prepResult) {
	if r.newMsg {
		d.Log.NewMsg(r.id)
	}
	if r.info {
		d.Log.InfoMsg(r.id, r.size, r.sender, r.infoPid, r.infoUid)
	}
	if r.warning != "" {
		d.Log.Warning(r.warning)
		delete(d.prepBusy, r.id)
		return
	}
	req := cleanReq{todo: true, id: r.id, chans: r.chans}
	if r.info {
		req.info = &msgInfo{sender: r.sender, birth: r.birth, chans: r.chans}
	}
	if !d.cleanSend("todo/"+num(r.id), req) {
		delete(d.prepBusy, r.id)
	}
}

// todoRemoved schedules a preprocessed message once qmail-clean has removed todo/.
func (d *Daemon) todoRemoved(req cleanReq, ok bool) {
	delete(d.prepBusy, req.id)
	if !ok {
		return // todo/ stays; the next scan preprocesses it again
	}
	pe := pqElt{id: req.id, dt: now()}
	any := false
	for c := 0; c < nchan; c++ {
		if req.chans[c] {
			e := pe
			if d.concurrency[c] > 0 {
				e.fresh = true
				e.info = req.info
				d.fresh[c]++
			}
			d.pqch[c].insert(e)
			any = true
		}
	}
	if !any {
		d.pqdon.insert(pe)
	}
}

// wantTodo reports whether the main loop should take more messages from todo/ now:
// there is room for one more in preprocessing, and fewer freshly preprocessed
// messages wait for a delivery slot than the running channels can start soon (twice
// their concurrency, plus some slack). Deliveries so keep pace with preprocessing
// while a huge backlog drains, and the backlog costs no memory until it is reached.
func (d *Daemon) wantTodo() bool {
	if d.exitASAP || d.readASAP || len(d.prepBusy) >= prepMax {
		return false
	}
	running, fresh, limit := false, 0, 0
	for c := 0; c < nchan; c++ {
		if d.concurrency[c] > 0 && d.alive[c] {
			running = true
			fresh += d.fresh[c]
			limit += 2*d.concurrency[c] + freshSlack
		}
	}
	return !running || fresh < limit // with every channel held, preprocessing is all there is to do
}

// ---- the clean connection, pipelined: qmail-clean answers requests in order

type cleanReq struct {
	cmd   string
	todo  bool // a todo/ request from preprocessing
	id    uint64
	chans [nchan]bool
	info  *msgInfo
}

// cleanConn carries requests to qmail-clean and its one-byte answers back. Answers
// are collected by a goroutine that never blocks, so qmail-clean never waits on us
// and a full request pipe always drains.
type cleanConn struct {
	out    chan string
	notify chan struct{}

	mu      sync.Mutex
	answers []byte
	dead    bool
}

func (d *Daemon) startClean() {
	cc := &cleanConn{out: make(chan string, 1024), notify: make(chan struct{}, 1)}
	d.cc = cc
	wake := func() {
		select {
		case cc.notify <- struct{}{}:
		default:
		}
	}
	go func() {
		dead := false
		var buf []byte
		for cmd := range cc.out {
			if dead {
				continue
			}
			buf = append(append(buf[:0], cmd...), 0)
			// Requests already waiting go out in one write: qmail-clean reads a stream.
			buf = drainInto(buf, cc.out, []byte{0})
			if _, err := d.Clean.W.Write(buf); err != nil {
				dead = true
				cc.mu.Lock()
				cc.dead = true
				cc.mu.Unlock()
				wake()
			}
		}
	}()
	go func() {
		buf := make([]byte, 512)
		for {
			n, err := d.Clean.R.Read(buf)
			cc.mu.Lock()
			cc.answers = append(cc.answers, buf[:n]...)
			if err != nil {
				cc.dead = true
			}
			cc.mu.Unlock()
			wake()
			if err != nil {
				return
			}
		}
	}()
}

// cleanSend queues a request; it reports false if qmail-clean is gone.
func (d *Daemon) cleanSend(cmd string, req cleanReq) bool {
	if d.cleanGone {
		return false
	}
	req.cmd = cmd
	d.cleanPending = append(d.cleanPending, req)
	d.cc.out <- cmd
	return true
}

// clean asks qmail-clean to remove a finished message's files; a failure is logged
// when the answer comes.
func (d *Daemon) clean(cmd string) { d.cleanSend(cmd, cleanReq{}) }

// cleanAnswers matches qmail-clean's answers to the requests waiting for them.
func (d *Daemon) cleanAnswers() {
	d.cc.mu.Lock()
	answers, dead := d.cc.answers, d.cc.dead
	d.cc.answers = nil
	d.cc.mu.Unlock()
	for _, b := range answers {
		if len(d.cleanPending) == 0 {
			d.Log.Warning("internal error: unexpected answer from qmail-clean")
			continue
		}
		req := d.cleanPending[0]
		d.cleanPending[0] = cleanReq{}
		d.cleanPending = d.cleanPending[1:]
		if b != '+' {
			d.Log.Warning("qmail-clean unable to clean up " + req.cmd)
		}
		if req.todo {
			d.todoRemoved(req, b == '+')
		}
	}
	if dead && !d.cleanGone {
		d.cleanGone = true
		d.cleanDied()
		for _, req := range d.cleanPending {
			if req.todo {
				d.todoRemoved(req, false)
			}
		}
		d.cleanPending = nil
	}
}

// trimTo cuts f, of which the first n bytes have been written, to n bytes: a spare's
// old data beyond them goes. (trim, for a file of unknown length written so far, asks
// for the file offset first.) If mtime is not nil, it is set to the file's final
// modification time.
func trimTo(f *os.File, n int64, mtime *int64) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != n {
		if err := f.Truncate(n); err != nil {
			return err
		}
		if mtime == nil {
			return nil
		}
		// The truncation set a new mtime.
		if st, err = f.Stat(); err != nil {
			return err
		}
	}
	if mtime != nil {
		*mtime = st.ModTime().Unix()
	}
	return nil
}
