package qmaint

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/queue"
)

func newQueue(t *testing.T) *Manager {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "queue")
	o := queue.Owners{Qmailq: os.Geteuid(), Qmails: os.Geteuid(), Qmailr: os.Geteuid(), Qmail: os.Getegid()}
	if err := queue.Create(dir, 7, o); err != nil {
		t.Fatal(err)
	}
	return &Manager{Q: queue.Open(dir)}
}

// preprocessed queues a message and turns it into what qmail-send makes of it.
func preprocessed(t *testing.T, m *Manager, sender string, local, remote []string) uint64 {
	t.Helper()
	env := "F" + sender + "\x00T" + strings.Join(append(append([]string{}, local...), remote...), "\x00T") + "\x00\x00"
	if err := queue.Enqueue(m.Q, strings.NewReader("Subject: t\n\nbody\n"), strings.NewReader(env),
		queue.Caller{UID: 0, PID: 1, Invoked: "by uid 0", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(m.Q.Dir, "todo"))
	var id uint64
	for _, e := range ents {
		if n, ok := parseID(e.Name()); ok {
			id = n
		}
	}
	write := func(sub string, recs []string, kind string) {
		if len(recs) == 0 {
			return
		}
		var b strings.Builder
		for _, r := range recs {
			b.WriteString(kind + r + "\x00")
		}
		os.WriteFile(m.Q.Path(sub, id), []byte(b.String()), 0600)
	}
	write("info", []string{sender}, "F")
	write("local", local, "T")
	write("remote", remote, "T")
	os.Remove(m.Q.Path("todo", id))
	os.Remove(m.Q.Path("intd", id))
	return id
}

func TestExpireBouncesOnlyPending(t *testing.T) {
	m := newQueue(t)
	id := preprocessed(t, m, "s@example.org", []string{"l@here.example"}, []string{"a@far.example", "b@far.example"})
	// a@far was delivered already: qmail-send marked it D.
	data, _ := os.ReadFile(m.Q.Path("remote", id))
	data[0] = 'D'
	os.WriteFile(m.Q.Path("remote", id), data, 0600)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(m.Q.Path("remote", id), old, old)

	unlock, err := m.Lock(false)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := m.Expire(id); err != nil {
		t.Fatal(err)
	}
	msg, err := m.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Pending() != 0 || !msg.Bouncing {
		t.Errorf("after expire: %+v", msg)
	}
	b, _ := os.ReadFile(m.Q.Path("bounce", id))
	if strings.Contains(string(b), "<a@far.example>") || !strings.Contains(string(b), "<b@far.example>:\n") ||
		!strings.Contains(string(b), "<l@here.example>:\n") || !strings.Contains(string(b), "removed from the queue by its administrator") {
		t.Errorf("bounce file:\n%s", b)
	}
	if fi, _ := os.Stat(m.Q.Path("remote", id)); time.Since(fi.ModTime()) > time.Minute {
		t.Error("channel file not made due")
	}
}

func TestHoldReleaseDelete(t *testing.T) {
	m := newQueue(t)
	id := preprocessed(t, m, "s@example.org", nil, []string{"a@far.example"})
	unlock, err := m.Lock(false)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	before := queueFiles(t, m)
	if err := m.Hold(id); err != nil {
		t.Fatal(err)
	}
	if msg, err := m.Get(id); err != nil || msg.State != StateHeld || msg.Recipients[0].Addr != "a@far.example" {
		t.Fatalf("held: %+v %v", msg, err)
	}
	for _, sub := range []string{"mess", "info", "remote"} {
		if _, err := os.Stat(m.Q.Path(sub, id)); !os.IsNotExist(err) {
			t.Errorf("%s still in the queue", sub)
		}
	}
	if err := m.Expire(id); err == nil {
		t.Error("expired a held message")
	}
	if err := m.Release(id); err != nil {
		t.Fatal(err)
	}
	if after := queueFiles(t, m); after != before {
		t.Errorf("release did not restore the queue:\n%s\nwant\n%s", after, before)
	}
	// Hold, then delete while held.
	if err := m.Hold(id); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(id); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted held message: %v", err)
	}
	if msgs, _ := m.List(); len(msgs) != 0 {
		t.Errorf("left: %+v", msgs)
	}
}

func queueFiles(t *testing.T, m *Manager) string {
	var b strings.Builder
	filepath.Walk(m.Q.Dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && !strings.Contains(p, "/lock/") {
			rel, _ := filepath.Rel(m.Q.Dir, p)
			b.WriteString(rel + "\n")
		}
		return nil
	})
	return b.String()
}

func TestLockRefusesWhileSendRuns(t *testing.T) {
	m := newQueue(t)
	f, _ := os.OpenFile(filepath.Join(m.Q.LockDir(), "sendmutex"), os.O_WRONLY, 0)
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	_, err := m.Lock(false)
	var running *SendRunningError
	if !errors.As(err, &running) || running.PID != os.Getpid() {
		t.Fatalf("got %v", err)
	}
	if pid, _ := m.SendPID(); pid != os.Getpid() {
		t.Errorf("SendPID %d", pid)
	}
}

func TestDamagedFilesAreErrorsNotPanics(t *testing.T) {
	m := newQueue(t)
	id := preprocessed(t, m, "s@example.org", nil, []string{"a@far.example"})
	os.WriteFile(m.Q.Path("remote", id), bytes.Repeat([]byte("T"), 2*recordMax), 0600)
	if _, err := m.Get(id); err == nil {
		t.Error("a record without end was read")
	}
	os.WriteFile(m.Q.Path("remote", id), []byte("Tpartial"), 0600) // no NUL: ignored, as qmail does
	if msg, err := m.Get(id); err != nil || len(msg.Recipients) != 0 {
		t.Errorf("%+v %v", msg, err)
	}
}

func TestFilterAndCount(t *testing.T) {
	now := time.Now()
	msgs := []Message{
		{ID: 1, State: StateQueued, Sender: "a@x.example", Birth: now.Add(-2 * time.Hour), Recipients: []Recipient{{Addr: "r@y.example"}, {Addr: "s@Z.example", Done: true}}},
		{ID: 2, State: StateTodo, Sender: "", Birth: now.Add(-time.Minute), Recipients: []Recipient{{Addr: "r@y.example"}, {Addr: "t@y.example"}}},
		{ID: 3, State: StateHeld, Sender: "b@x.example", Birth: now.Add(-9 * 24 * time.Hour), Recipients: []Recipient{{Addr: "u@z.example"}}},
	}
	pick := func(f Filter) (ids []uint64) {
		for _, m := range msgs {
			if f.Match(m, now) {
				ids = append(ids, m.ID)
			}
		}
		return
	}
	for _, c := range []struct {
		f    Filter
		want string
	}{
		{Filter{State: StateTodo}, "[2]"},
		{Filter{Sender: "X.EXAMPLE"}, "[1 3]"},
		{Filter{Domain: "z.example"}, "[3]"}, // done recipients do not count
		{Filter{Recipient: "r@"}, "[1 2]"},
		{Filter{OlderThan: time.Hour}, "[1 3]"},
		{Filter{NewerThan: time.Hour}, "[2]"},
		{Filter{Domain: "y.example", OlderThan: time.Hour}, "[1]"},
	} {
		if got := fmt.Sprint(pick(c.f)); got != c.want {
			t.Errorf("%+v: %s, want %s", c.f, got, c.want)
		}
	}
	counts, _ := Count(msgs, "domain", now)
	if counts["y.example"] != 2 || counts["z.example"] != 1 {
		t.Errorf("by domain %v", counts)
	}
	counts, _ = Count(msgs, "age", now)
	if counts["<1h"] != 1 || counts["1h-1d"] != 1 || counts[">7d"] != 1 {
		t.Errorf("by age %v", counts)
	}
	if _, err := Count(msgs, "color", now); err == nil {
		t.Error("count by nonsense")
	}
}
