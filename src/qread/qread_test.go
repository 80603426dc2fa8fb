package qread

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/queue"
)

func makeQueue(t *testing.T) queue.Queue {
	t.Helper()
	dir := t.TempDir()
	for _, d := range queue.UnsplitDirs {
		os.MkdirAll(filepath.Join(dir, d), 0700)
	}
	for _, d := range queue.SplitDirs {
		for i := 0; i < queue.DefaultSplit; i++ {
			os.MkdirAll(filepath.Join(dir, d, strconv.Itoa(i)), 0700)
		}
	}
	return queue.Open(dir)
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0600); err != nil {
		t.Fatal(err)
	}
}

func TestRead(t *testing.T) {
	q := makeQueue(t)
	birth := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// Message 47: one local recipient done, one to go, one remote, and a bounce waiting.
	write(t, q.Path("mess", 47), "0123456789")
	write(t, q.Path("info", 47), "Fjoe@example.org\x00")
	os.Chtimes(q.Path("info", 47), birth, birth)
	write(t, q.Path("local", 47), "Ddone@here\x00Tleft@here\x00")
	write(t, q.Path("remote", 47), "Tfar\x01away@there\x00")
	write(t, q.Path("bounce", 47), "<x@y>:\nno\n\n")
	// Message 24: a bounce (empty sender), remote only.
	write(t, q.Path("mess", 24), "abc")
	write(t, q.Path("info", 24), "F\x00")
	os.Chtimes(q.Path("info", 24), birth, birth)
	write(t, q.Path("remote", 24), "Tjoe@example.org\x00")
	// Message 70 lost its mess file.
	write(t, q.Path("info", 70), "Fa@b\x00")
	// Not yet preprocessed: not listed.
	write(t, q.Path("todo", 99), "")

	var out bytes.Buffer
	if err := Read(q, &out); err != nil {
		t.Fatal(err)
	}
	want := "2 Jan 2026 03:04:05 GMT  #24  3  <> \n" +
		"\tremote\tjoe@example.org\n" +
		"2 Jan 2026 03:04:05 GMT  #47  10  <joe@example.org>  bouncing\n" +
		"  done\tlocal\tdone@here\n" +
		"\tlocal\tleft@here\n" +
		"\tremote\tfar_away@there\n" +
		"warning: trouble with #70: no such file or directory\n"
	if out.String() != want {
		t.Errorf("got\n%q\nwant\n%q", out.String(), want)
	}
}

func TestStat(t *testing.T) {
	q := makeQueue(t)
	write(t, q.Path("mess", 1), "")
	write(t, q.Path("mess", 2), "")
	write(t, q.Path("mess", 25), "")
	write(t, q.Path("todo", 25), "")
	var out bytes.Buffer
	if err := Stat(q, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "messages in queue: 3\nmessages in queue but not yet preprocessed: 1\n" {
		t.Errorf("got %q", got)
	}
}
