package clean

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
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
