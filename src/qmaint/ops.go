package qmaint

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/notqmail/notqmail/src/send"
)

// The operations below change a message's files. They must run with the lock held
// (Lock): qmail-send stopped.

// ExpireReport is the failure text an expired recipient's bounce gives.
const ExpireReport = "This message was removed from the queue by its administrator.\nI'm not going to try again.\n"

// ErrNotPreprocessed refuses operations on a message qmail-send has not preprocessed.
var ErrNotPreprocessed = errors.New("not yet preprocessed by qmail-send; start it and try again")

// Delete removes a message without a bounce. todo/ goes first (it would recreate
// info/), then info/ (after which qmail-send no longer schedules it), the channel
// and bounce files, and mess/ last: an interruption leaves at most a mess/ file with
// nothing pointing at it, which qmail-send's cleanup and qmail-qfix remove.
func (m *Manager) Delete(id uint64) error {
	msg, err := m.Get(id)
	if err != nil {
		return err
	}
	if msg.State == StateHeld {
		for _, sub := range []string{"info", "local", "remote", "bounce", "mess"} {
			if err := remove(filepath.Join(m.holdDir(id), sub)); err != nil {
				return err
			}
		}
		return remove(m.holdDir(id))
	}
	for _, sub := range []string{"todo", "intd", "info", "local", "remote", "bounce", "mess"} {
		if err := remove(m.Q.Path(sub, id)); err != nil {
			return err
		}
	}
	return nil
}

func remove(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Expire bounces every recipient not yet delivered, now: for each, as qmail-send does
// with a permanent failure, a record is appended to bounce/ and then the recipient is
// marked done (a crash in between means a bounce and another try, never neither).
// The channel files are made due, so that qmail-send, once started, finds nothing
// left to deliver at once, sends the bounce and removes the message.
func (m *Manager) Expire(id uint64) error {
	msg, err := m.Get(id)
	if err != nil {
		return err
	}
	switch msg.State {
	case StateTodo:
		return ErrNotPreprocessed
	case StateHeld:
		return errors.New("held; release it first")
	}
	for _, ch := range []string{"local", "remote"} {
		fn := m.Q.Path(ch, id)
		f, err := os.OpenFile(fn, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err != nil || fi.Size() > fileMax {
			f.Close()
			return fmt.Errorf("%s: unreadable or too large", fn)
		}
		data := make([]byte, fi.Size())
		if _, err := f.ReadAt(data, 0); err != nil {
			f.Close()
			return err
		}
		for pos := 0; pos < len(data); {
			end := bytes.IndexByte(data[pos:], 0)
			if end < 0 {
				break // a partial record, which qmail-send ignores too
			}
			if data[pos] == 'T' {
				if err := m.appendBounce(id, string(data[pos+1:pos+end])); err != nil {
					f.Close()
					return err
				}
				if _, err := f.WriteAt([]byte{'D'}, int64(pos)); err != nil {
					f.Close()
					return err
				}
			}
			pos += end + 1
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return m.makeDue(id, m.Q.Path)
}

func (m *Manager) appendBounce(id uint64, recip string) error {
	f, err := os.OpenFile(m.Q.Path("bounce", id), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0600)
	if err != nil {
		return err
	}
	_, err = f.Write(send.BounceRecord(recip, ExpireReport))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// makeDue sets the channel files' times to now: qmail-send reads them at start-up as
// each message's next try.
func (m *Manager) makeDue(id uint64, path func(string, uint64) string) error {
	now := m.now()
	for _, ch := range []string{"local", "remote"} {
		if err := os.Chtimes(path(ch, id), now, now); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Requeue makes a queued message due now, for qmail-send's next start.
func (m *Manager) Requeue(id uint64) error {
	msg, err := m.Get(id)
	if err != nil {
		return err
	}
	switch msg.State {
	case StateTodo:
		return nil // qmail-send preprocesses and tries it as soon as it starts
	case StateHeld:
		return errors.New("held; release it first")
	}
	return m.makeDue(id, m.Q.Path)
}

// holdOrder moves info/ first and mess/ last on hold (the message leaves qmail-send's
// view at once, and its content stays in the queue until everything else is moved),
// and the reverse on release (info/ last: qmail-send schedules only a complete
// message). A crash leaves a partly moved message, which repeating the same command
// completes, and which qmail-qfix recognises by hold/<id>/ and leaves alone.
var holdOrder = []string{"info", "local", "remote", "bounce", "mess"}

// Hold moves a queued message to hold/<id>/.
func (m *Manager) Hold(id uint64) error {
	msg, err := m.Get(id)
	if err != nil && !(errors.Is(err, ErrNotFound) && exists(m.holdDir(id))) {
		return err
	}
	if msg.State == StateTodo {
		return ErrNotPreprocessed
	}
	if err := os.MkdirAll(filepath.Dir(m.holdDir(id)), 0700); err != nil {
		return err
	}
	if err := os.Mkdir(m.holdDir(id), 0700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	for _, sub := range holdOrder {
		if err := move(m.Q.Path(sub, id), filepath.Join(m.holdDir(id), sub)); err != nil {
			return err
		}
	}
	return nil
}

// Release moves a held message back into the queue, due now.
func (m *Manager) Release(id uint64) error {
	if fi, err := os.Stat(m.holdDir(id)); err != nil || !fi.IsDir() {
		return fmt.Errorf("%w among held messages", ErrNotFound)
	}
	now := m.now()
	for i := len(holdOrder) - 1; i >= 0; i-- {
		sub := holdOrder[i]
		src := filepath.Join(m.holdDir(id), sub)
		if sub == "local" || sub == "remote" {
			if err := os.Chtimes(src, now, now); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if err := move(src, m.Q.Path(sub, id)); err != nil {
			return err
		}
	}
	return os.Remove(m.holdDir(id))
}

// move renames src to dst if src exists; an existing dst is never overwritten.
func move(src, dst string) error {
	if !exists(src) {
		return nil
	}
	if exists(dst) {
		return fmt.Errorf("both %s and %s exist; compare them by hand", src, dst)
	}
	return os.Rename(src, dst)
}

// Since is the age of a message.
func (m *Manager) Since(msg Message) time.Duration { return m.now().Sub(msg.Birth) }
