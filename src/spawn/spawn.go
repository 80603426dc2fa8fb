// Package spawn is the spawner side of qmail-send's delivery protocol, shared by
// qmail-lspawn and qmail-rspawn.
//
// The spawner first writes one byte: how many deliveries it runs at once (conf-spawn,
// 120). qmail-send then sends commands: a slot byte, the message's name under
// queue/mess ("<split>/<id>") and \0, the envelope sender and \0, the recipient and
// \0. For each command the spawner eventually answers with the slot byte, a report
// (K success, Z temporary failure, D permanent failure, then text) and \0. Reports come
// back in completion order, not command order.
package spawn

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Limit is qmail's conf-spawn: the most deliveries one spawner runs at once.
const Limit = 120

// fieldMax bounds each command field, so a broken qmail-send cannot exhaust memory.
// Addresses from qmail-queue are far shorter.
const fieldMax = 64 << 10

// Runner carries out one delivery. mess is the message, open for reading; at is the
// index of the recipient's last '@'. The report is a K, Z or D letter followed by text,
// without \0.
type Runner interface {
	Deliver(mess *os.File, sender, recip string, at int) []byte
}

// Server reads commands and runs deliveries.
type Server struct {
	MessDir  string // queue/mess: message names are relative to it
	OwnerUID int    // the uid every message file must have (qmailq); -1 skips the check (sandbox)
	Runner   Runner

	noatimeRefused atomic.Bool // O_NOATIME gave EPERM once: not ours, and not root
}

// Serve announces Limit, then runs commands from in until it ends, writing reports to
// out. It returns once every started delivery has reported.
func (s *Server) Serve(in io.Reader, out io.Writer) error {
	w := &reportWriter{w: out}
	w.raw([]byte{Limit})

	var mu sync.Mutex
	var inUse [Limit]bool
	var wg sync.WaitGroup

	br := bufio.NewReaderSize(in, 1024)
	for {
		slotByte, err := br.ReadByte()
		if err != nil {
			break
		}
		messid, ok1, err1 := readField(br)
		sender, ok2, err2 := readField(br)
		recip, ok3, err3 := readField(br)
		if err1 != nil || err2 != nil || err3 != nil {
			break // qmail-send went away mid-command
		}
		slot := int(slotByte)
		if !ok1 || !ok2 || !ok3 {
			w.report(slot, "Zqmail-spawn out of memory. (#4.3.0)\n")
			continue
		}
		if slot >= Limit {
			w.report(slot, "ZInternal error: delnum too big. (#4.3.5)\n")
			continue
		}
		mu.Lock()
		busy := inUse[slot]
		mu.Unlock()
		if busy {
			w.report(slot, "ZInternal error: delnum in use. (#4.3.5)\n")
			continue
		}
		mess, rep := s.open(messid, recip)
		if mess == nil {
			w.report(slot, rep)
			continue
		}
		mu.Lock()
		inUse[slot] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep := s.Runner.Deliver(mess, sender, recip, strings.LastIndexByte(recip, '@'))
			mess.Close()
			if i := strings.IndexByte(string(rep), 0); i >= 0 {
				rep = rep[:i]
			}
			// The slot is free again once its report is on its way.
			mu.Lock()
			inUse[slot] = false
			mu.Unlock()
			w.report(slot, string(rep))
		}()
	}
	wg.Wait()
	return w.err
}

// openMessage opens a message file for reading on a bare descriptor. Not os.Open: it
// would try to register the regular file with the poller, and take it off again, at
// four system calls per delivery; a blocking descriptor is what the delivery hands on
// anyway.
//
// With O_NOATIME: the delivery's reads would otherwise change the access time of a
// file just synced, dirtying its inode for the next sync to write again (the access
// time of a mess/ file matters only while it has no info/ file). Only root or the
// owner may ask for it; anyone else (qmail-rspawn, as qmailr) opens without, and
// stops asking.
func (s *Server) openMessage(path string) (int, error) {
	const flags = syscall.O_RDONLY | syscall.O_CLOEXEC
	if !s.noatimeRefused.Load() {
		fd, err := syscall.Open(path, flags|syscall.O_NOATIME, 0)
		if err != syscall.EPERM {
			return fd, err
		}
		s.noatimeRefused.Store(true)
	}
	return syscall.Open(path, flags, 0)
}

// open checks a command as qmail's spawn does and opens the message; on failure it
// returns the report.
func (s *Server) open(messid, recip string) (*os.File, string) {
	for i := 0; i < len(messid); i++ {
		if (i == 0 || messid[i] != '/') && (messid[i] < '0' || messid[i] > '9') {
			return nil, "DInternal error: messid has nonnumerics. (#5.3.5)\n"
		}
	}
	if len(messid)+1 > 100 {
		return nil, "DInternal error: messid too long. (#5.3.5)\n"
	}
	if messid == "" {
		return nil, "DInternal error: messid too short. (#5.3.5)\n"
	}
	if strings.IndexByte(recip, '@') < 0 {
		return nil, "DSorry, address must include host name. (#5.1.3)\n"
	}
	fd, err := s.openMessage(filepath.Join(s.MessDir, messid))
	if err != nil {
		return nil, "Zqmail-spawn unable to open message. (#4.3.0)\n"
	}
	f := os.NewFile(uintptr(fd), messid)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, "Zqmail-spawn unable to fstat message. (#4.3.0)\n"
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, "ZSorry, message has wrong type. (#4.3.5)\n"
	}
	if s.OwnerUID >= 0 {
		// qmailq has to be trusted: a message owned by anyone else was not queued by
		// qmail-queue.
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != s.OwnerUID {
			f.Close()
			return nil, "ZSorry, message has wrong owner. (#4.3.5)\n"
		}
	}
	return f, ""
}

// readField reads a \0-terminated field; ok is false if it was longer than fieldMax
// (its excess is skipped).
func readField(br *bufio.Reader) (string, bool, error) {
	var b []byte
	ok := true
	for {
		part, err := br.ReadSlice(0)
		if len(b)+len(part) > fieldMax {
			ok = false
		} else {
			b = append(b, part...)
		}
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			return "", false, err
		}
	}
	if !ok {
		return "", false, nil
	}
	return string(b[:len(b)-1]), true, nil
}

// reportWriter serialises reports from concurrent deliveries. Once qmail-send stops
// reading, reports are dropped but deliveries still finish, as in qmail.
type reportWriter struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

func (r *reportWriter) raw(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return
	}
	_, r.err = r.w.Write(b)
}

func (r *reportWriter) report(slot int, rep string) {
	b := make([]byte, 0, len(rep)+2)
	b = append(b, byte(slot))
	b = append(b, rep...)
	b = append(b, 0)
	r.raw(b)
}

// outputGrace is how long a finished delivery program's output pipe may stay open: a
// process it left in the background (a .qmail program ending in "&") inherits the pipe,
// and must not hold the delivery slot for as long as it lives.
const outputGrace = 5 * time.Second

// run runs a delivery program (qmail-local, qmail-remote) with its standard output and
// error collected (see keep), and returns them with its exit status. Once the
// program has exited, its output is waited for at most outputGrace. startErr is set
// when the program could not be started.
func run(cmd *exec.Cmd, limit int) (out []byte, code int, crashed bool, startErr error) {
	w := &collector{limit: limit}
	cmd.Stdout = w
	cmd.Stderr = w // the same writer: one pipe for both, as qmail's spawners use
	cmd.WaitDelay = outputGrace
	if err := cmd.Start(); err != nil {
		return nil, 0, false, err
	}
	err := cmd.Wait()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil // exited 0; something it started kept the pipe open
	}
	code, crashed = exitStatus(err)
	return w.out, code, crashed, nil
}

// collector keeps a delivery program's output (see keep).
type collector struct {
	limit int
	out   []byte
}

func (c *collector) Write(p []byte) (int, error) {
	c.out = keep(c.out, p, c.limit)
	return len(p), nil
}

// keep appends a delivery program's output p to out, keeping at most limit bytes (0:
// no limit beyond hardMax) the way qmail-lspawn truncates long reports.
func keep(out, p []byte, limit int) []byte {
	const hardMax = 64 << 10
	const truncMess = "\nError report too long, sorry.\n"
	for len(p) > 0 {
		n := min(len(p), 4096)
		out = append(out, p[:n]...)
		p = p[n:]
		if limit > 100 && len(out) > limit {
			out = append(out[:limit-len(truncMess)-3], truncMess...)
		} else if len(out) > hardMax {
			out = out[:hardMax]
		}
	}
	return out
}
