package spawn

import (
	"container/list"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// Pool defaults.
const (
	DefaultWorkerIdle = 30 * time.Second
	DefaultWorkerUses = 10000
	DefaultWorkerMax  = 32
)

// WorkersOffEnv turns the workers off when set to "0": qmail-lspawn then execs
// qmail-local for every delivery.
const WorkersOffEnv = "NOTQMAIL_LOCAL_WORKERS"

// Pool runs local deliveries on long-running qmail-local workers, one per account
// (uid, gid), instead of exec'ing qmail-local for each delivery. It is only used while
// bin/qmail-local is the very program file Exe: a site that replaced qmail-local by
// something else keeps getting it exec'ed.
type Pool struct {
	// Exe is the program file bin/qmail-local must be for workers to be used;
	// qmail-lspawn uses /proc/self/exe, the binary it runs from. The worker is then
	// started as bin/qmail-local --worker, so that ps and the like name it as
	// before.
	Exe string
	// Idle is how long an unused worker lives (DefaultWorkerIdle); Uses is how many
	// deliveries a worker takes before it is replaced (DefaultWorkerUses), so a leak
	// or an upgraded binary does not live forever; Max bounds the workers
	// (DefaultWorkerMax): the least recently used idle one makes room for a new
	// account, and with none idle the delivery is exec'ed.
	Idle time.Duration
	Uses int
	Max  int

	mu      sync.Mutex
	workers map[poolKey]*worker // the workers taking new deliveries
	lru     *list.List          // of *worker, least recently used first
	nextID  uint64
	exe     os.FileInfo
	exeErr  error
	exeOnce sync.Once
	running sync.WaitGroup // a worker's reader, until the worker is reaped
}

type poolKey struct{ uid, gid int }

type workerResult struct {
	code    int
	crashed bool
}

// request is a delivery in flight on a worker: where its result goes, and the read
// end of its output pipe, whose reading the result bounds.
type request struct {
	ch  chan workerResult
	out *os.File
}

// finish hands a delivery its result. Its output is read from then on for at most
// outputGrace (none after a crash): something a program left running in the
// background may hold the pipe, but not the delivery, like exec's WaitDelay.
func (q request) finish(res workerResult) {
	grace := outputGrace
	if res.crashed {
		grace = 0
	}
	q.out.SetReadDeadline(time.Now().Add(grace))
	q.ch <- res
}

type worker struct {
	key      poolKey
	conn     *net.UnixConn
	cmd      *exec.Cmd
	elem     *list.Element
	pending  map[uint64]request
	inflight int
	uses     int
	idleAt   time.Time   // when it last became idle
	timer    *time.Timer // retires it once idle for long enough
	retiring bool        // takes no more deliveries; its end is shut once it is idle
	dead     bool
	closed   bool
}

// eligible reports whether prog (bin/qmail-local) is our own program. os.SameFile
// with the running executable is a stat of each, and follows bin/'s symlinks to the
// multi-call binary; a wrapper script, or a binary replaced since qmail-lspawn
// started, is a different file, and gets exec'ed as before.
func (p *Pool) eligible(prog string) bool {
	p.exeOnce.Do(func() { p.exe, p.exeErr = os.Stat(p.Exe) })
	if p.exeErr != nil {
		return false
	}
	fi, err := os.Stat(prog)
	return err == nil && os.SameFile(fi, p.exe)
}

// deliver runs one delivery on a worker for (uid, gid) (creds false: the worker runs
// as qmail-lspawn itself, in a sandbox), started as prog in dir. ok is false when no
// worker could take it and nothing was started: the caller execs qmail-local instead.
func (p *Pool) deliver(prog string, uid, gid int, creds bool, dir string, args []string, mess *os.File) (out []byte, code int, crashed, ok bool) {
	p.mu.Lock()
	p.nextID++
	id := p.nextID
	p.mu.Unlock()
	req, ok := encodeRequest(id, args)
	if !ok {
		return nil, 0, false, false
	}
	// The output pipe: the read end non-blocking for the poller (so its deadline
	// works), the write end blocking like the pipe an exec'ed qmail-local gets.
	var pfd [2]int
	if err := syscall.Pipe2(pfd[:], syscall.O_CLOEXEC); err != nil {
		return nil, 0, false, false
	}
	// A new pipe's read end has no other status flag: set O_NONBLOCK without
	// reading them first.
	if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(pfd[0]), syscall.F_SETFL, syscall.O_NONBLOCK); e != 0 {
		syscall.Close(pfd[0])
		syscall.Close(pfd[1])
		return nil, 0, false, false
	}
	r := os.NewFile(uintptr(pfd[0]), "qmail-local output")
	defer r.Close()

	w, ch := p.get(poolKey{uid, gid}, prog, creds, dir, id, r)
	if w == nil {
		syscall.Close(pfd[1])
		return nil, 0, false, false
	}
	_, _, err := w.conn.WriteMsgUnix(req, syscall.UnixRights(int(mess.Fd()), pfd[1]), nil)
	runtime.KeepAlive(mess)
	syscall.Close(pfd[1])
	if err != nil {
		// The request never reached the worker: nothing was delivered.
		p.abandon(w, id)
		return nil, 0, false, false
	}

	// The output is read here, to its end or, once the result has come (which
	// sets a deadline on r: request.finish), to that deadline.
	c := &collector{limit: truncReport}
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		c.Write(buf[:n])
		if err != nil {
			break
		}
	}
	res := <-ch
	return c.out, res.code, res.crashed, true
}

// get returns a worker for key with the request id registered on it, starting one if
// needed; nil if there is none to be had.
func (p *Pool) get(key poolKey, prog string, creds bool, dir string, id uint64, out *os.File) (*worker, chan workerResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.workers == nil {
		p.workers = map[poolKey]*worker{}
		p.lru = list.New()
	}
	w := p.workers[key]
	if w == nil {
		if len(p.workers) >= p.max() && !p.evictLocked() {
			return nil, nil
		}
		var err error
		if w, err = p.start(key, prog, creds, dir); err != nil {
			return nil, nil
		}
		p.workers[key] = w
		w.elem = p.lru.PushBack(w)
	} else {
		p.lru.MoveToBack(w.elem)
	}
	ch := make(chan workerResult, 1)
	w.pending[id] = request{ch, out}
	w.inflight++
	w.uses++
	if w.uses >= p.uses() {
		p.retireLocked(w)
	}
	return w, ch
}

// evictLocked retires the least recently used idle worker; false if all are busy.
func (p *Pool) evictLocked() bool {
	for e := p.lru.Front(); e != nil; e = e.Next() {
		if w := e.Value.(*worker); w.inflight == 0 {
			p.retireLocked(w)
			return true
		}
	}
	return false
}

// retireLocked stops giving w deliveries, and shuts its end once it is idle: the
// worker then finishes and exits.
func (p *Pool) retireLocked(w *worker) {
	if !w.retiring {
		w.retiring = true
		if p.workers[w.key] == w {
			delete(p.workers, w.key)
		}
		p.lru.Remove(w.elem)
	}
	if w.inflight == 0 && !w.closed {
		w.closed = true
		w.conn.CloseWrite()
	}
}

func (p *Pool) start(key poolKey, prog string, creds bool, dir string) (*worker, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	mine := os.NewFile(uintptr(fds[0]), "worker socket")
	theirs := os.NewFile(uintptr(fds[1]), "worker socket")
	defer theirs.Close()
	c, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return nil, err
	}
	conn := c.(*net.UnixConn)
	cmd := exec.Command(prog, WorkerFlag)
	// Named as bin/qmail-local is when exec'ed, in the same directory and with the
	// same (inherited) environment, so deliveries see no difference.
	cmd.Args[0] = "bin/qmail-local"
	cmd.Dir = dir
	cmd.ExtraFiles = []*os.File{theirs} // WorkerFD
	// Its standard error is ours (the log): a worker's own trouble, such as a crash
	// trace, belongs to no single delivery.
	cmd.Stderr = os.Stderr
	if creds {
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: uint32(key.uid), Gid: uint32(key.gid), Groups: []uint32{}},
		}
	}
	if err := cmd.Start(); err != nil {
		conn.Close()
		return nil, err
	}
	w := &worker{key: key, conn: conn, cmd: cmd, pending: map[uint64]request{}}
	p.running.Add(1)
	go p.read(w)
	return w, nil
}

// read takes replies from w until it goes away, then reports whatever was still in
// flight as crashed and reaps the process.
func (p *Pool) read(w *worker) {
	defer p.running.Done()
	buf := make([]byte, replyLen+1)
	for {
		n, err := w.conn.Read(buf)
		if err != nil {
			break
		}
		id, code, ok := decodeReply(buf[:n])
		if !ok {
			break // a broken worker: kill it below, its deliveries crashed
		}
		p.mu.Lock()
		if q, ok := w.pending[id]; ok {
			delete(w.pending, id)
			w.inflight--
			q.finish(workerResult{code: code})
			p.idleLocked(w)
		}
		p.mu.Unlock()
	}
	p.mu.Lock()
	w.dead = true
	if !w.retiring {
		p.retireLocked(w)
	}
	for id, q := range w.pending {
		delete(w.pending, id)
		q.finish(workerResult{crashed: true})
	}
	w.inflight = 0
	p.mu.Unlock()
	w.conn.Close()
	w.cmd.Process.Kill() // a no-op for a worker that exited
	w.cmd.Wait()
}

// idleLocked handles w having finished a delivery.
func (p *Pool) idleLocked(w *worker) {
	if w.inflight > 0 {
		return
	}
	if w.retiring {
		p.retireLocked(w)
		return
	}
	// One timer per worker, pushed back each time it becomes idle; it fires at most
	// once per Idle however busy the worker is.
	w.idleAt = time.Now()
	if w.timer != nil {
		w.timer.Reset(p.idle())
		return
	}
	w.timer = time.AfterFunc(p.idle(), func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if w.inflight == 0 && !w.dead && time.Since(w.idleAt) >= p.idle() {
			p.retireLocked(w)
		}
	})
}

// abandon forgets a request that could not be sent; the worker is retired, since its
// socket failed.
func (p *Pool) abandon(w *worker, id uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := w.pending[id]; ok {
		delete(w.pending, id)
		w.inflight--
	}
	p.retireLocked(w)
}

// closeWait bounds how long Close waits for the workers to exit.
const closeWait = 10 * time.Second

// Close retires every worker, and waits (at most closeWait) until every worker has
// exited and been reaped, so that qmail-lspawn leaves no orphans behind. Deliveries
// still in flight finish first.
func (p *Pool) Close() {
	p.mu.Lock()
	for _, w := range p.workers {
		p.retireLocked(w)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		p.running.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(closeWait):
	}
}

func (p *Pool) idle() time.Duration {
	if p.Idle > 0 {
		return p.Idle
	}
	return DefaultWorkerIdle
}

func (p *Pool) uses() int {
	if p.Uses > 0 {
		return p.Uses
	}
	return DefaultWorkerUses
}

func (p *Pool) max() int {
	if p.Max > 0 {
		return p.Max
	}
	return DefaultWorkerMax
}
