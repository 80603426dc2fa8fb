package queue

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestCreateLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "queue")
	o := Owners{Qmailq: 101, Qmails: 102, Qmailr: 103, Qmail: 104}
	if err := Create(dir, 5, o); err != nil {
		t.Fatal(err)
	}
	type want struct {
		typ  fs.FileMode
		perm fs.FileMode
		uid  int
	}
	w := map[string]want{
		".":              {fs.ModeDir, 0750, 101},
		"pid":            {fs.ModeDir, 0700, 101},
		"intd":           {fs.ModeDir, 0700, 101},
		"todo":           {fs.ModeDir, 0750, 101},
		"mess":           {fs.ModeDir, 0750, 101},
		"info":           {fs.ModeDir, 0700, 102},
		"local":          {fs.ModeDir, 0700, 102},
		"remote":         {fs.ModeDir, 0700, 102},
		"bounce":         {fs.ModeDir, 0700, 102},
		"spare":          {fs.ModeDir, 0750, 101},
		"spare/q":        {fs.ModeDir, 0700, 101},
		"spare/s":        {fs.ModeDir, 0700, 102},
		"lock":           {fs.ModeDir, 0750, 101},
		"lock/tcpto":     {0, 0644, 103},
		"lock/sendmutex": {0, 0600, 102},
		"lock/trigger":   {fs.ModeNamedPipe, 0622, 102},
	}
	for i := 0; i < 5; i++ {
		n := strconv.Itoa(i)
		w["mess/"+n] = want{fs.ModeDir, 0750, 101}
		w["info/"+n] = want{fs.ModeDir, 0700, 102}
		w["local/"+n] = want{fs.ModeDir, 0700, 102}
		w["remote/"+n] = want{fs.ModeDir, 0700, 102}
	}
	seen := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		exp, ok := w[rel]
		if !ok {
			t.Errorf("unexpected %s", rel)
			return nil
		}
		seen++
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Type() != exp.typ || fi.Mode().Perm() != exp.perm {
			t.Errorf("%s: mode %v, want type %v perm %o", rel, fi.Mode(), exp.typ, exp.perm)
		}
		if os.Geteuid() == 0 {
			st := fi.Sys().(*syscall.Stat_t)
			if int(st.Uid) != exp.uid || st.Gid != 104 {
				t.Errorf("%s: owner %d:%d, want %d:104", rel, st.Uid, st.Gid, exp.uid)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != len(w) {
		t.Errorf("saw %d nodes, want %d", seen, len(w))
	}
	tcpto, err := os.ReadFile(filepath.Join(dir, "lock/tcpto"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tcpto, make([]byte, TcptoSize)) {
		t.Errorf("tcpto is %d bytes, not 1024 zero bytes", len(tcpto))
	}
	if q := Open(dir); q.Split != 5 {
		t.Errorf("Open detects split %d, want 5", q.Split)
	}
}

func TestCreateIsIdempotentAndRepairs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "queue")
	o := Owners{Qmailq: os.Geteuid(), Qmails: os.Geteuid(), Qmailr: os.Geteuid(), Qmail: os.Getegid()}
	if err := Create(dir, DefaultSplit, o); err != nil {
		t.Fatal(err)
	}
	// A live queue: a queued message, a used tcpto, broken modes, a missing dir.
	msg := filepath.Join(dir, "mess/3/26")
	os.WriteFile(msg, []byte("hello\n"), 0644)
	os.WriteFile(filepath.Join(dir, "todo/26"), []byte("u0\x00p1\x00Fa@b\x00Tc@d\x00\x00"), 0644)
	used := bytes.Repeat([]byte{7}, TcptoSize)
	os.WriteFile(filepath.Join(dir, "lock/tcpto"), used, 0644)
	os.Chmod(filepath.Join(dir, "pid"), 0777)
	os.Chmod(filepath.Join(dir, "lock/trigger"), 0600)
	os.Remove(filepath.Join(dir, "remote/22"))
	os.Remove(filepath.Join(dir, "lock/sendmutex"))

	if err := Create(dir, DefaultSplit, o); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(msg); string(b) != "hello\n" {
		t.Errorf("message changed: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "todo/26")); err != nil {
		t.Errorf("todo entry lost: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "lock/tcpto")); !bytes.Equal(b, used) {
		t.Error("tcpto contents were reset")
	}
	for rel, perm := range map[string]fs.FileMode{"pid": 0700, "lock/trigger": 0622, "remote/22": 0700, "lock/sendmutex": 0600} {
		fi, err := os.Lstat(filepath.Join(dir, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if fi.Mode().Perm() != perm {
			t.Errorf("%s: perm %o, want %o", rel, fi.Mode().Perm(), perm)
		}
	}
}

func TestCreateRefusesWrongType(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "queue")
	if err := os.MkdirAll(filepath.Join(dir, "lock"), 0750); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "lock/trigger"), []byte("x"), 0600)
	err := Create(dir, 3, Owners{})
	if err == nil || !strings.Contains(err.Error(), "lock/trigger") {
		t.Fatalf("err = %v, want complaint about lock/trigger", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "lock/trigger")); string(b) != "x" {
		t.Error("existing file replaced")
	}
	if err := Create(dir, 0, Owners{}); err == nil {
		t.Error("split 0 accepted")
	}
}

func TestCreateFollowsASymlinkedQueue(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "bigdisk", "queue")
	if err := os.MkdirAll(real, 0750); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "qmail", "queue")
	os.MkdirAll(filepath.Dir(link), 0755)
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := Create(link, 3, Owners{Qmailq: os.Geteuid(), Qmails: os.Geteuid(), Qmailr: os.Geteuid(), Qmail: os.Getegid()}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("symlink replaced: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(real, "mess", "2")); err != nil {
		t.Errorf("layout not made on the link's target: %v", err)
	}
}
