package clean

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/queue"
)

func testQueue(t *testing.T) queue.Queue {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"pid", "intd", "todo", "bounce"} {
		os.MkdirAll(filepath.Join(dir, d), 0700)
	}
	for i := 0; i < queue.DefaultSplit; i++ {
		os.MkdirAll(filepath.Join(dir, "mess", strconv.Itoa(i)), 0700)
	}
	return queue.Open(dir)
}

func touch(t *testing.T, p string) {
	t.Helper()
	if err := os.WriteFile(p, []byte("x"), 0600); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gone(p string) bool { _, err := os.Stat(p); return os.IsNotExist(err) }

func TestServeProtocol(t *testing.T) {
	q := testQueue(t)
	if q.Split != queue.DefaultSplit {
		t.Fatalf("split %d", q.Split)
	}
	touch(t, q.Path("intd", 1234))
	touch(t, q.Path("todo", 1234))
	touch(t, q.Path("mess", 1234))
	touch(t, q.Path("intd", 99))
	touch(t, q.Path("mess", 99))

	in := "todo/1234\x00foop/99\x00foop/12a\x00bogus/1\x00foop/\x00foop/777\x00" +
		"todo/" + string(bytes.Repeat([]byte("1"), 200)) + "\x00"
	var out bytes.Buffer
	if err := Serve(q, bytes.NewBufferString(in), &out); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "++xxx+x"; got != want {
		t.Fatalf("answers %q, want %q", got, want)
	}
	if !gone(q.Path("intd", 1234)) || !gone(q.Path("todo", 1234)) {
		t.Error("todo/1234 request left files")
	}
	if gone(q.Path("mess", 1234)) {
		t.Error("todo request removed the message")
	}
	if !gone(q.Path("intd", 99)) || !gone(q.Path("mess", 99)) {
		t.Error("foop/99 request left files")
	}
}

func TestUnremovableIsBang(t *testing.T) {
	q := testQueue(t)
	// A directory where the message should be cannot be removed with unlink semantics
	// when it has content.
	p := q.Path("mess", 5)
	os.MkdirAll(filepath.Join(p, "sub"), 0700)
	if got := Handle(q, "foop/5"); got != '!' {
		t.Fatalf("got %q, want '!'", got)
	}
}

func TestCleanPids(t *testing.T) {
	q := testQueue(t)
	old := filepath.Join(q.Dir, "pid", "100.1.1")
	fresh := filepath.Join(q.Dir, "pid", "200.1.1")
	touch(t, old)
	touch(t, fresh)
	past := time.Now().Add(-37 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	CleanPids(q, time.Now())
	if !gone(old) {
		t.Error("old pid file kept")
	}
	if gone(fresh) {
		t.Error("fresh pid file removed")
	}
}

// TestServeRecycles: with spare/q present, finished files become spares named by
// their inode numbers instead of being unlinked, up to the bound; they keep their
// contents (qmail-queued overwrites and trims them), and a queued message can be made
// of them.
func TestServeRecycles(t *testing.T) {
	q := testQueue(t)
	spare := filepath.Join(q.Dir, queue.SpareQ)
	if err := os.MkdirAll(spare, 0700); err != nil {
		t.Fatal(err)
	}
	ino := func(p string) uint64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	// A message as qmail-queue leaves it: mess/ named by its inode number, which is
	// the id of intd/ and todo/. It was preprocessed (todo request), then delivered
	// (foop request).
	tmp := filepath.Join(q.Dir, "pid", "tmp")
	os.WriteFile(tmp, []byte("Subject: secret\n\nmail\n"), 0644)
	id := ino(tmp)
	intd, todo, mess := q.Path("intd", id), q.Path("todo", id), q.Path("mess", id)
	if err := os.Rename(tmp, mess); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(intd, []byte("u0\x00p1\x00Fa\x00Tb\x00"), 0644)
	os.Link(intd, todo)
	envIno := ino(intd)

	// Without idle top-ups, so that spare/q holds only what was recycled.
	defer func(n int) { spareLowWater = n }(spareLowWater)
	spareLowWater = 0
	var out bytes.Buffer
	n := strconv.FormatUint(id, 10)
	if err := Serve(q, bytes.NewBufferString("todo/"+n+"\x00foop/"+n+"\x00"), &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "++" {
		t.Fatalf("answers %q", out.String())
	}
	for _, p := range []string{intd, todo, mess} {
		if !gone(p) {
			t.Errorf("%s still there", p)
		}
	}
	for _, n := range []uint64{envIno, id} {
		p := filepath.Join(spare, strconv.FormatUint(n, 10))
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("inode %d not recycled: %v", n, err)
			continue
		}
		if fi.Size() == 0 || ino(p) != n {
			t.Errorf("spare %s: size %d inode %d", p, fi.Size(), ino(p))
		}
	}
	// The next message is made of them, with none of the old contents.
	if err := queue.EnqueueWith(q, bytes.NewBufferString("new\n"), bytes.NewBufferString("Fc\x00Td\x00\x00"),
		queue.Caller{UID: 1, PID: 2, Invoked: "by uid 1", Time: time.Now()},
		queue.Options{Spares: queue.NewSpares(q), PidName: "t"}); err != nil {
		t.Fatal(err)
	}
	ids, err := q.Todo()
	if err != nil || len(ids) != 1 || (ids[0] != id && ids[0] != envIno) {
		t.Fatalf("queued %v (%v), want a message made of the spares %d, %d", ids, err, id, envIno)
	}
	for _, sub := range []string{"mess", "todo"} {
		b, _ := os.ReadFile(q.Path(sub, ids[0]))
		if bytes.Contains(b, []byte("secret")) || bytes.Contains(b, []byte("Fa\x00")) {
			t.Errorf("%s of the new message holds old data: %q", sub, b)
		}
	}
	if !bytes.HasSuffix(mustRead(t, q.Path("mess", ids[0])), []byte("\nnew\n")) {
		t.Errorf("mess: %q", mustRead(t, q.Path("mess", ids[0])))
	}
	if got := string(mustRead(t, q.Path("todo", ids[0]))); got != "u1\x00p2\x00Fc\x00Td\x00" {
		t.Errorf("todo: %q", got)
	}
	n = strconv.FormatUint(ids[0], 10)
	out.Reset()
	if err := Serve(q, bytes.NewBufferString("todo/"+n+"\x00foop/"+n+"\x00"), &out); err != nil || out.String() != "++" {
		t.Fatalf("second message: %q %v", out.String(), err)
	}

	// The bound on a file system short of room: spare/q full, the next file is
	// unlinked.
	spareRoom = func() bool { return false }
	defer func() { spareRoom = nil }()
	for i := 0; i < queue.MaxSpares-2; i++ {
		if err := os.WriteFile(filepath.Join(spare, "f"+strconv.Itoa(i)), nil, 0600); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(q.Path("mess", 2), []byte("x"), 0644)
	out.Reset()
	if err := Serve(q, bytes.NewBufferString("foop/2\x00"), &out); err != nil || out.String() != "+" {
		t.Fatalf("foop/2: %q %v", out.String(), err)
	}
	ents, _ := os.ReadDir(spare)
	if len(ents) != queue.MaxSpares || !gone(q.Path("mess", 2)) {
		t.Errorf("spare/q has %d entries, want %d; mess/2 gone: %v", len(ents), queue.MaxSpares, gone(q.Path("mess", 2)))
	}
}

// Serve tops spare/q up with empty spares, spareTopUpPerTick a time, once no request
// has come for a FlushInterval (whether it holds back while requests keep coming is
// a matter of timing, which tests do not assert).
func TestServeTopsUpSpares(t *testing.T) {
	q := testQueue(t)
	defer func(n, m int) { spareLowWater, spareTopUpPerTick = n, m }(spareLowWater, spareTopUpPerTick)
	spareLowWater, spareTopUpPerTick = 50, 20
	_, count := spareDir(t, q)
	r, w := io.Pipe()
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() { done <- Serve(q, r, &out) }()
	if _, err := w.Write([]byte("foop/1\x00")); err != nil { // a message already gone
		t.Fatal(err)
	}
	// Quiet: topped up to the low mark, in steps.
	deadline := time.Now().Add(time.Minute)
	for count() < 50 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 50 || out.String() != "+" {
		t.Fatalf("spare/q holds %d files after a quiet spell, want 50; answers %q", n, out.String())
	}
}

// A pool that a drain grew past queue.MaxSpares keeps its spares while requests come
// and gives the excess back, spareTrimPerTick a time, once they stop; never below
// MaxSpares.
func TestServeTrimsSpares(t *testing.T) {
	q := testQueue(t)
	defer func(n int) { spareTrimPerTick = n }(spareTrimPerTick)
	spareTrimPerTick = 30
	spareRoom = func() bool { return true }
	defer func() { spareRoom = nil }()
	dir, count := spareDir(t, q)
	for i := 0; i < queue.MaxSpares+40; i++ {
		if err := os.WriteFile(filepath.Join(dir, "f"+strconv.Itoa(i)), nil, 0600); err != nil {
			t.Fatal(err)
		}
	}
	// A finished message while the pool is over MaxSpares: kept, not unlinked.
	os.WriteFile(q.Path("mess", 3), []byte("x"), 0644)
	r, w := io.Pipe()
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() { done <- Serve(q, r, &out) }()
	if _, err := w.Write([]byte("foop/3\x00")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	var seen []int
	for n := count(); n > queue.MaxSpares && time.Now().Before(deadline); n = count() {
		if len(seen) == 0 || seen[len(seen)-1] != n {
			seen = append(seen, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // another quiet tick: nothing more goes
	w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := count(); n != queue.MaxSpares || out.String() != "+" {
		t.Fatalf("spare/q holds %d files after a quiet spell, want %d; answers %q", n, queue.MaxSpares, out.String())
	}
	if !slices.Contains(seen, queue.MaxSpares+41) {
		t.Errorf("spare/q went %v: want MaxSpares+41 on the way (the recycled mess/3 kept)", seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i-1]-seen[i] > spareTrimPerTick {
			t.Errorf("spare/q went from %d to %d: more than %d at once", seen[i-1], seen[i], spareTrimPerTick)
		}
	}
}

// spareDir makes q's spare/q and returns it with a function that counts its entries.
func spareDir(t *testing.T, q queue.Queue) (string, func() int) {
	t.Helper()
	dir := filepath.Join(q.Dir, queue.SpareQ)
	if err := os.MkdirAll(dir, 0700); err != nil {
		t.Fatal(err)
	}
	return dir, func() int {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
}
