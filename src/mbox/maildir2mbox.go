package mbox

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/notqmail/notqmail/src/dotqmail"
)

// staleTmp is how old (by access time) a file in a maildir's tmp/ must be before
// maildir2mbox removes it: 36 hours, as qmail.
const staleTmp = 36 * time.Hour

type maildirMessage struct {
	name  string // relative to the maildir: new/... or cur/...
	mtime time.Time
}

// FromMaildir is maildir2mbox: it moves every message of the maildir at dir (new/ and
// cur/, oldest first) to the end of the mbox at mbox, through a complete new copy
// written at tmp and renamed over mbox while mbox is locked. Only once the new mbox
// is in place are the messages removed from the maildir; one that cannot be removed
// is reported on warn (it will be moved again next time). Relative mbox and tmp paths
// are taken relative to dir. Files left in tmp/ for 36 hours are removed first.
//
// Unlike qmail's maildir2mbox, an unterminated last line of a message is kept (with a
// newline added) instead of being dropped.
func FromMaildir(dir, mbox, tmp string, warn io.Writer) error {
	if !filepath.IsAbs(mbox) {
		mbox = filepath.Join(dir, mbox)
	}
	if !filepath.IsAbs(tmp) {
		tmp = filepath.Join(dir, tmp)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		if err == nil {
			err = syscall.ENOTDIR
		}
		return fmt.Errorf("unable to chdir to %s: %s", dir, dotqmail.ErrText(err))
	}
	cleanTmp(dir)
	msgs, err := scan(dir)
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}

	lock, err := os.OpenFile(mbox, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("unable to lock %s: %s", mbox, dotqmail.ErrText(err))
	}
	defer lock.Close()
	if err := Lock(lock, 0); err != nil {
		return fmt.Errorf("unable to lock %s: %s", mbox, dotqmail.ErrText(err))
	}
	old, err := os.Open(mbox)
	if err != nil {
		return fmt.Errorf("unable to read %s: %s", mbox, dotqmail.ErrText(err))
	}
	defer old.Close()
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("unable to create %s: %s", tmp, dotqmail.ErrText(err))
	}
	defer out.Close()
	writeErr := func(err error) error {
		return fmt.Errorf("unable to write to %s: %s", tmp, dotqmail.ErrText(err))
	}

	w := bufio.NewWriterSize(out, 64*1024)
	var rerr error
	if _, err := io.Copy(w, readerFunc(func(p []byte) (int, error) {
		n, err := old.Read(p)
		if err != nil && err != io.EOF {
			rerr = err
		}
		return n, err
	})); err != nil {
		if rerr != nil {
			return fmt.Errorf("unable to read %s: %s", mbox, dotqmail.ErrText(rerr))
		}
		return writeErr(err)
	}
	for _, m := range msgs {
		if err := appendMessage(w, dir, m, tmp); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return writeErr(err)
	}
	if err := out.Sync(); err != nil {
		return writeErr(err)
	}
	if err := out.Close(); err != nil {
		return writeErr(err)
	}
	if err := os.Rename(tmp, mbox); err != nil {
		return fmt.Errorf("unable to move %s to %s: %s", tmp, mbox, dotqmail.ErrText(err))
	}
	for _, m := range msgs {
		if err := os.Remove(filepath.Join(dir, m.name)); err != nil {
			fmt.Fprintf(warn, "maildir2mbox: warning: $MAILDIR/%s will be delivered twice; unable to unlink: %s\n", m.name, dotqmail.ErrText(err))
		}
	}
	return nil
}

func cleanTmp(dir string) {
	ents, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil {
		return
	}
	now := time.Now()
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, "tmp", e.Name())
		var st syscall.Stat_t
		if syscall.Stat(p, &st) != nil {
			continue
		}
		if now.Sub(time.Unix(st.Atim.Unix())) > staleTmp {
			os.Remove(p)
		}
	}
}

// scan lists the messages in new/ and cur/ oldest first. Files modified in the
// current second are left for next time, so the order is never mixed up by a
// delivery arriving during the run.
func scan(dir string) ([]maildirMessage, error) {
	now := time.Now().Unix()
	var msgs []maildirMessage
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return nil, fmt.Errorf("unable to scan $MAILDIR/%s: %s", sub, dotqmail.ErrText(err))
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			fi, err := os.Stat(filepath.Join(dir, sub, e.Name()))
			if err != nil || !fi.Mode().IsRegular() || fi.ModTime().Unix() >= now {
				continue
			}
			msgs = append(msgs, maildirMessage{name: sub + "/" + e.Name(), mtime: fi.ModTime()})
		}
	}
	sort.SliceStable(msgs, func(i, j int) bool {
		if msgs[i].mtime.Unix() != msgs[j].mtime.Unix() {
			return msgs[i].mtime.Unix() < msgs[j].mtime.Unix()
		}
		return msgs[i].name < msgs[j].name
	})
	return msgs, nil
}

// appendMessage writes one maildir message as an mbox message: a "From " line made
// from its Return-Path line (if it starts with one) and its modification time, the
// message quoted, and a blank line.
func appendMessage(w *bufio.Writer, dir string, m maildirMessage, tmp string) error {
	f, err := os.Open(filepath.Join(dir, m.name))
	if err != nil {
		return fmt.Errorf("unable to read $MAILDIR/%s: %s", m.name, dotqmail.ErrText(err))
	}
	defer f.Close()
	var rerr error
	r := bufio.NewReaderSize(readerFunc(func(p []byte) (int, error) {
		n, err := f.Read(p)
		if err != nil && err != io.EOF {
			rerr = err
		}
		return n, err
	}), 64*1024)
	first, err := r.ReadSlice('\n')
	if rerr != nil {
		return fmt.Errorf("unable to read $MAILDIR/%s: %s", m.name, dotqmail.ErrText(rerr))
	}
	from := "From XXX "
	if err == nil && strings.HasPrefix(string(first), "Return-Path: <") {
		if first[14] == '>' {
			from = "From MAILER-DAEMON "
		} else {
			// The address between "<" and the ">\n" that should end the line.
			s := []byte(string(first[14:max(14, len(first)-2)]))
			for i, c := range s {
				if c == ' ' || c == '\t' {
					s[i] = '-'
				}
			}
			from = "From " + string(s) + " "
		}
	}
	writeErr := func(err error) error {
		return fmt.Errorf("unable to write to %s: %s", tmp, dotqmail.ErrText(err))
	}
	if _, err := w.WriteString(from + Ctime(m.mtime)); err != nil {
		return writeErr(err)
	}
	q := NewQuoter(w)
	if _, err := q.Write(first); err != nil {
		return writeErr(err)
	}
	if _, err := io.Copy(q, r); err != nil {
		if rerr != nil {
			return fmt.Errorf("unable to read $MAILDIR/%s: %s", m.name, dotqmail.ErrText(rerr))
		}
		return writeErr(err)
	}
	if err := q.Finish(); err != nil {
		return writeErr(err)
	}
	if err := w.WriteByte('\n'); err != nil {
		return writeErr(err)
	}
	return nil
}
