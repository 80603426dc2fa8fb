package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/notqmail/notqmail/src/ids"
)

// Owners are the ids that own the queue: qmail's users qmailq, qmails and qmailr, and
// group qmail. In sandbox mode they are all the sandbox owner's ids.
type Owners struct {
	Qmailq, Qmails, Qmailr int // uids
	Qmail                  int // gid of group qmail
}

// LookupOwners returns the owners from the qmail users and groups (ids.User and
// ids.Group, so sandbox mode yields the sandbox owner).
func LookupOwners() (Owners, error) {
	var o Owners
	for _, u := range []struct {
		name string
		uid  *int
	}{{ids.Qmailq, &o.Qmailq}, {ids.Qmails, &o.Qmails}, {ids.Qmailr, &o.Qmailr}} {
		a, err := ids.User(u.name)
		if err != nil {
			return Owners{}, err
		}
		*u.uid = a.UID
	}
	g, err := ids.Group(ids.GroupQmail)
	if err != nil {
		return Owners{}, err
	}
	o.Qmail = g
	return o, nil
}

// TcptoSize is the size of lock/tcpto, qmail-remote's table of hosts that timed out.
const TcptoSize = 1024

// Node is one node of the queue layout: qmail's hier_queue().
type Node struct {
	Rel   string           // path relative to the queue directory; "" is the queue itself
	Kind  byte             // 'd' directory, 'f' file (Size zero bytes), 'p' FIFO
	Size  int              // a file's size when created
	Owner func(Owners) int // the node's owner; the group is always qmail
	Mode  fs.FileMode
}

func uidQ(o Owners) int { return o.Qmailq }
func uidS(o Owners) int { return o.Qmails }
func uidR(o Owners) int { return o.Qmailr }

// Layout lists every node of a queue with the given split, parents first: what Create
// makes and what a repair tool checks.
func Layout(split int) []Node {
	e := []Node{
		{"", 'd', 0, uidQ, 0750},
		{"pid", 'd', 0, uidQ, 0700},
		{"intd", 'd', 0, uidQ, 0700},
		{"todo", 'd', 0, uidQ, 0750},
		{"mess", 'd', 0, uidQ, 0750},
		{"info", 'd', 0, uidS, 0700},
		{"local", 'd', 0, uidS, 0700},
		{"remote", 'd', 0, uidS, 0700},
		{"bounce", 'd', 0, uidS, 0700},
	}
	for _, sub := range []struct {
		name string
		uid  func(Owners) int
		mode fs.FileMode
	}{{"mess", uidQ, 0750}, {"info", uidS, 0700}, {"local", uidS, 0700}, {"remote", uidS, 0700}} {
		for i := 0; i < split; i++ {
			e = append(e, Node{sub.name + "/" + strconv.Itoa(i), 'd', 0, sub.uid, sub.mode})
		}
	}
	return append(e,
		// Spare inodes, beyond qmail: emptied queue files kept for reuse instead of
		// being unlinked (spare/q: qmailq's mess/ and intd/ files; spare/s: qmails's
		// info/, local/ and remote/ files). See Spare.
		Node{"spare", 'd', 0, uidQ, 0750},
		Node{"spare/q", 'd', 0, uidQ, 0700},
		Node{"spare/s", 'd', 0, uidS, 0700},
		Node{"lock", 'd', 0, uidQ, 0750},
		Node{"lock/tcpto", 'f', TcptoSize, uidR, 0644},
		Node{"lock/sendmutex", 'f', 0, uidS, 0600},
		Node{"lock/trigger", 'p', 0, uidS, 0622},
	)
}

// Create makes qmail's queue layout at dir (normally $QMAILHOME/queue) with qmail's
// owners and modes: everything group qmail, split directories 0..split-1. It is
// idempotent and safe on a live queue: it creates what is missing and repairs owners
// and modes, and never deletes or truncates anything (an existing lock/tcpto keeps
// its contents). Owners are set only when running as root.
func Create(dir string, split int, o Owners) error {
	if split < 1 {
		return fmt.Errorf("queue: split must be at least 1, not %d", split)
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Clean(dir)), 0755); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	chown := os.Geteuid() == 0
	for _, e := range Layout(split) {
		p := filepath.Join(dir, e.Rel)
		if err := ensure(p, e); err != nil {
			return fmt.Errorf("queue: %w", err)
		}
		if chown {
			chownFn := os.Lchown
			if e.Rel == "" {
				chownFn = os.Chown // the queue itself may be a symlink to another disk
			}
			if err := chownFn(p, e.Owner(o), o.Qmail); err != nil {
				return fmt.Errorf("queue: %w", err)
			}
		}
		// Chmod after chown: chown clears set-id bits, and mkdir/mkfifo modes pass
		// through the umask.
		if err := os.Chmod(p, e.Mode); err != nil {
			return fmt.Errorf("queue: %w", err)
		}
	}
	return nil
}

// ensure makes one node if it is missing, and checks that an existing one has the
// right type; it never replaces anything.
func ensure(p string, e Node) error {
	stat := os.Lstat
	if e.Rel == "" {
		stat = os.Stat // sites often make the queue a symlink to a bigger disk
	}
	fi, err := stat(p)
	if err == nil {
		ok := false
		switch e.Kind {
		case 'd':
			ok = fi.IsDir()
		case 'f':
			ok = fi.Mode().IsRegular()
		case 'p':
			ok = fi.Mode()&fs.ModeNamedPipe != 0
		}
		if !ok {
			return fmt.Errorf("%s exists but is %s, not %s; move it away by hand", p, fi.Mode().Type(), kindName(e.Kind))
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	switch e.Kind {
	case 'd':
		return os.Mkdir(p, e.Mode)
	case 'p':
		if err := syscall.Mkfifo(p, uint32(e.Mode)); err != nil {
			return &fs.PathError{Op: "mkfifo", Path: p, Err: err}
		}
		return nil
	default:
		// O_EXCL: a concurrent creator wins and keeps its contents.
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, e.Mode)
		if err != nil {
			return err
		}
		if e.Size > 0 {
			if _, err := f.Write(make([]byte, e.Size)); err != nil {
				f.Close()
				return err
			}
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
}

func kindName(k byte) string {
	switch k {
	case 'd':
		return "a directory"
	case 'p':
		return "a FIFO"
	}
	return "a regular file"
}
