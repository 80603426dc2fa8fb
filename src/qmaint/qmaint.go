// Package qmaint is qmail-qmaint, a queue manager in the spirit of qmHandle: it lists
// and counts messages by state, sender, recipient, domain and age, shows a message
// with its envelope, and deletes, expires, requeues, holds and releases messages.
//
// # The protocol with qmail-send
//
// qmail-send keeps its schedule in memory: after start-up it never rescans info/, it
// reads a channel file (local/, remote/) through a buffer during a delivery pass, and
// it has handed deliveries to its spawners that no file shows. No change made to a
// message's files while it runs is safe: a recipient marked done may already sit in
// its buffer or be in delivery, a removed file makes it retry and warn forever, and a
// message added behind its back is never scheduled. So every change is made with
// qmail-send stopped, under its own single-instance lock, lock/sendmutex:
//
//  1. qmail-qmaint takes lock/sendmutex without waiting. If it is free, qmail-send is
//     not running and cannot start until the change is done.
//  2. If it is held, qmail-qmaint refuses, unless told to stop qmail-send (-S): it
//     finds the holder in /proc/locks, sends it SIGTERM (qmail-send then starts no
//     delivery, waits for those in progress and writes each message's next retry
//     into its channel files' times), and waits for the lock.
//  3. It changes the files, in an order that a crash cannot turn into a lost or
//     half-removed message (see each operation), and releases the lock. qmail-send's
//     supervisor restarts it; at start-up qmail-send reads the whole queue again.
//
// Requeue alone also works with qmail-send running, the way qmail offers: SIGALRM
// makes every deferred delivery due now (there is no per-message way).
//
// Held messages live in queue/hold/<id>/ (mess, info, local, remote, bounce), on the
// queue's file system, where qmail-send neither schedules nor cleans them up.
package qmaint

import (
	"bufio"
	"bytes"
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

// States of a message.
const (
	StateTodo   = "todo"   // queued, not yet preprocessed by qmail-send
	StateQueued = "queued" // preprocessed: being delivered or waiting for a retry
	StateHeld   = "held"   // moved aside by hold
)

// recordMax bounds one envelope record and fileMax one envelope file, so a damaged
// queue cannot make the tool use unbounded memory.
const (
	recordMax = 1 << 16
	fileMax   = 64 << 20
)

// Recipient is one envelope recipient.
type Recipient struct {
	Addr    string `json:"addr"`
	Channel string `json:"channel,omitempty"` // local or remote; empty before preprocessing
	Done    bool   `json:"done"`
}

// Message is one queued message as its files describe it.
type Message struct {
	ID         uint64      `json:"id"`
	State      string      `json:"state"`
	Sender     string      `json:"sender"`
	Recipients []Recipient `json:"recipients"`
	Birth      time.Time   `json:"birth"` // info/'s time (queue lifetime counts from it)
	Size       int64       `json:"size"`
	Bouncing   bool        `json:"bouncing"` // failures wait in bounce/
}

// Pending counts the recipients not yet delivered.
func (m Message) Pending() int {
	n := 0
	for _, r := range m.Recipients {
		if !r.Done {
			n++
		}
	}
	return n
}

// Manager works on one queue.
type Manager struct {
	Q   queue.Queue
	Now func() time.Time
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) holdDir(id uint64) string {
	return filepath.Join(m.Q.Dir, "hold", strconv.FormatUint(id, 10))
}

// ErrNotFound is returned for an id that is not in the queue.
var ErrNotFound = errors.New("no such message")

// List returns every message in the queue, by id. Messages that vanish while it
// reads (delivered meanwhile) are left out.
func (m *Manager) List() ([]Message, error) {
	seen := map[uint64]bool{}
	for i := 0; i < m.Q.Split; i++ {
		names, err := readNames(filepath.Join(m.Q.Dir, "mess", strconv.Itoa(i)))
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if id, ok := parseID(n); ok && id%uint64(m.Q.Split) == uint64(i) {
				seen[id] = true
			}
		}
	}
	names, err := readNames(filepath.Join(m.Q.Dir, "hold"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, n := range names {
		if id, ok := parseID(n); ok {
			seen[id] = true
		}
	}
	ids := make([]uint64, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var msgs []Message
	for _, id := range ids {
		msg, err := m.Get(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return msgs, fmt.Errorf("message %d: %w", id, err)
		}
		msgs = append(msgs, msg)
	}
	return msgs, nil
}

// Get reads one message. A mess/ file with neither todo/ nor info/ is not a message
// (qmail-queue still writing it, or qmail-send finishing it) and is ErrNotFound.
func (m *Manager) Get(id uint64) (Message, error) {
	msg := Message{ID: id}
	if fi, err := os.Stat(m.holdDir(id)); err == nil && fi.IsDir() {
		msg.State = StateHeld
		return m.read(msg, func(sub string) string { return filepath.Join(m.holdDir(id), sub) })
	}
	path := func(sub string) string { return m.Q.Path(sub, id) }
	if exists(path("todo")) {
		msg.State = StateTodo
		fi, err := os.Stat(path("mess"))
		if err != nil {
			return msg, notFound(err)
		}
		msg.Size, msg.Birth = fi.Size(), fi.ModTime()
		recs, err := readRecords(path("todo"))
		if err != nil {
			return msg, notFound(err)
		}
		for _, r := range recs {
			switch r[0] {
			case 'F':
				msg.Sender = r[1:]
			case 'T':
				msg.Recipients = append(msg.Recipients, Recipient{Addr: r[1:]})
			}
		}
		return msg, nil
	}
	msg.State = StateQueued
	return m.read(msg, path)
}

// read fills a preprocessed (queued or held) message from info, mess and the channel
// files.
func (m *Manager) read(msg Message, path func(string) string) (Message, error) {
	fi, err := os.Stat(path("info"))
	if err != nil {
		return msg, notFound(err)
	}
	msg.Birth = fi.ModTime()
	recs, err := readRecords(path("info"))
	if err != nil {
		return msg, notFound(err)
	}
	for _, r := range recs {
		if r[0] == 'F' {
			msg.Sender = r[1:]
		}
	}
	mfi, err := os.Stat(path("mess"))
	if err != nil {
		return msg, notFound(err)
	}
	msg.Size = mfi.Size()
	for _, ch := range []string{"local", "remote"} {
		recs, err := readRecords(path(ch))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return msg, err
		}
		for _, r := range recs {
			if r[0] == 'T' || r[0] == 'D' {
				msg.Recipients = append(msg.Recipients, Recipient{Addr: r[1:], Channel: ch, Done: r[0] == 'D'})
			}
		}
	}
	msg.Bouncing = exists(path("bounce"))
	return msg, nil
}

func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound
	}
	return err
}

// readRecords reads a file of \0-terminated envelope records, without the
// terminators; a trailing partial record is ignored, as qmail does.
func readRecords(fn string) ([]string, error) {
	f, err := os.Open(fn)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(io.LimitReader(f, fileMax))
	var recs []string
	for {
		rec, err := r.ReadSlice(0)
		if err == bufio.ErrBufferFull {
			// A record longer than bufio's buffer: read it whole, bounded.
			long := bytes.Clone(rec)
			for err == bufio.ErrBufferFull && len(long) <= recordMax {
				rec, err = r.ReadSlice(0)
				long = append(long, rec...)
			}
			if len(long) > recordMax {
				return recs, fmt.Errorf("%s: record too long", fn)
			}
			rec = long
		}
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		if len(rec) > 1 {
			recs = append(recs, string(rec[:len(rec)-1]))
		}
	}
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func parseID(s string) (uint64, bool) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, false
	}
	return n, true
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// WriteMessage writes a message's envelope and then its content (the header and body
// as queued, with qmail-queue's Received line first).
func (m *Manager) WriteMessage(w io.Writer, msg Message) error {
	fmt.Fprintf(w, "Message %d (%s), %d bytes, queued %s\n", msg.ID, msg.State, msg.Size, msg.Birth.UTC().Format(time.RFC1123Z))
	fmt.Fprintf(w, "Sender: <%s>\n", msg.Sender)
	for _, r := range msg.Recipients {
		status := "pending"
		if r.Done {
			status = "done"
		}
		ch := r.Channel
		if ch == "" {
			ch = "-"
		}
		fmt.Fprintf(w, "Recipient: <%s> %s %s\n", r.Addr, ch, status)
	}
	if msg.Bouncing {
		fmt.Fprintln(w, "Bouncing: yes")
	}
	fmt.Fprintln(w)
	fn := m.Q.Path("mess", msg.ID)
	if msg.State == StateHeld {
		fn = filepath.Join(m.holdDir(msg.ID), "mess")
	}
	f, err := os.Open(fn)
	if err != nil {
		return notFound(err)
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// ---- filters

// Filter selects messages; zero fields match everything.
type Filter struct {
	State     string
	Sender    string // substring, case-insensitive
	Recipient string // substring of any pending recipient, case-insensitive
	Domain    string // domain of any pending recipient, exactly (case-insensitive)
	OlderThan time.Duration
	NewerThan time.Duration
}

// Empty reports whether the filter selects everything.
func (f Filter) Empty() bool { return f == Filter{} }

// Match reports whether a message passes the filter at time now.
func (f Filter) Match(m Message, now time.Time) bool {
	if f.State != "" && m.State != f.State {
		return false
	}
	if f.Sender != "" && !strings.Contains(strings.ToLower(m.Sender), strings.ToLower(f.Sender)) {
		return false
	}
	age := now.Sub(m.Birth)
	if f.OlderThan > 0 && age < f.OlderThan {
		return false
	}
	if f.NewerThan > 0 && age > f.NewerThan {
		return false
	}
	if f.Recipient == "" && f.Domain == "" {
		return true
	}
	for _, r := range m.Recipients {
		if r.Done {
			continue
		}
		if f.Recipient != "" && !strings.Contains(strings.ToLower(r.Addr), strings.ToLower(f.Recipient)) {
			continue
		}
		if f.Domain != "" && !strings.EqualFold(Domain(r.Addr), f.Domain) {
			continue
		}
		return true
	}
	return false
}

// Domain is the part of an address after its last @, or "" without one.
func Domain(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// AgeBucket names a message's age class for counting.
func AgeBucket(age time.Duration) string {
	switch {
	case age < time.Hour:
		return "<1h"
	case age < 24*time.Hour:
		return "1h-1d"
	case age < 7*24*time.Hour:
		return "1d-7d"
	}
	return ">7d"
}

// Count groups messages by a key: state, sender, recipient, domain or age. A message
// counts once per distinct pending recipient (or domain) for those keys.
func Count(msgs []Message, by string, now time.Time) (map[string]int, error) {
	c := map[string]int{}
	for _, m := range msgs {
		switch by {
		case "state":
			c[m.State]++
		case "sender":
			c[m.Sender]++
		case "age":
			c[AgeBucket(now.Sub(m.Birth))]++
		case "recipient", "domain":
			seen := map[string]bool{}
			for _, r := range m.Recipients {
				k := r.Addr
				if by == "domain" {
					k = strings.ToLower(Domain(r.Addr))
				}
				if !r.Done && !seen[k] {
					seen[k] = true
					c[k]++
				}
			}
		default:
			return nil, fmt.Errorf("cannot count by %q (state, sender, recipient, domain, age)", by)
		}
	}
	return c, nil
}

// ---- the lock and signals

// SendRunningError says that qmail-send holds its lock.
type SendRunningError struct{ PID int }

func (e *SendRunningError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("qmail-send is running (pid %d); stop it first, or give -S to have it stopped", e.PID)
	}
	return "qmail-send is running; stop it first, or give -S to have it stopped"
}

// Lock takes lock/sendmutex, so that qmail-send is not running and cannot start.
// With stop, a running qmail-send is sent SIGTERM and Lock waits until it has
// finished its deliveries in progress and exited. The returned function releases
// the lock.
func (m *Manager) Lock(stop bool) (func(), error) {
	fn := filepath.Join(m.Q.LockDir(), "sendmutex")
	f, err := os.OpenFile(fn, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("unable to open %s: %w", fn, err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		pid, _ := lockHolder(f)
		if !stop {
			f.Close()
			return nil, &SendRunningError{PID: pid}
		}
		if pid <= 0 {
			f.Close()
			return nil, fmt.Errorf("qmail-send is running but its pid is not in /proc/locks; stop it by hand")
		}
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			f.Close()
			return nil, fmt.Errorf("unable to stop qmail-send (pid %d): %w", pid, err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("unable to lock %s: %w", fn, err)
	}
	return func() { f.Close() }, nil
}

// SendPID returns the pid of the running qmail-send, or 0 when none holds the lock.
func (m *Manager) SendPID() (int, error) {
	f, err := os.Open(filepath.Join(m.Q.LockDir(), "sendmutex"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return lockHolder(f)
}

// Alarm sends qmail-send SIGALRM: every deferred delivery becomes due now.
func (m *Manager) Alarm() error {
	pid, err := m.SendPID()
	if err != nil {
		return err
	}
	if pid <= 0 {
		return errors.New("qmail-send is not running")
	}
	return syscall.Kill(pid, syscall.SIGALRM)
}

// lockHolder finds the process holding a flock on f in /proc/locks, whose lines read
// "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (device numbers in hex); waiters
// are marked "->" and skipped.
func lockHolder(f *os.File) (int, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	dev := uint64(st.Dev)
	major := (dev>>8)&0xfff | (dev>>32)&^0xfff
	minor := dev&0xff | (dev>>12)&^0xff
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, st.Ino)
	data, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 6 || fields[1] != "FLOCK" {
			continue
		}
		if !sameDevIno(fields[5], want) {
			continue
		}
		pid, err := strconv.Atoi(fields[4])
		if err == nil && pid > 0 {
			return pid, nil
		}
	}
	return 0, nil
}

// sameDevIno compares "maj:min:ino" with hex device numbers of any width.
func sameDevIno(a, b string) bool {
	pa, pb := strings.Split(a, ":"), strings.Split(b, ":")
	if len(pa) != 3 || len(pb) != 3 {
		return false
	}
	for i := 0; i < 2; i++ {
		x, e1 := strconv.ParseUint(pa[i], 16, 32)
		y, e2 := strconv.ParseUint(pb[i], 16, 32)
		if e1 != nil || e2 != nil || x != y {
			return false
		}
	}
	return pa[2] == pb[2]
}
