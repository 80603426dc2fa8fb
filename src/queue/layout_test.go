package queue

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestPath(t *testing.T) {
	q := Queue{Dir: "/var/qmail/queue", Split: 23}
	cases := map[string]string{
		"mess":   "/var/qmail/queue/mess/12/472",
		"info":   "/var/qmail/queue/info/12/472",
		"local":  "/var/qmail/queue/local/12/472",
		"remote": "/var/qmail/queue/remote/12/472",
		"todo":   "/var/qmail/queue/todo/472",
		"intd":   "/var/qmail/queue/intd/472",
		"bounce": "/var/qmail/queue/bounce/472",
	}
	for sub, want := range cases {
		if got := q.Path(sub, 472); got != want {
			t.Errorf("Path(%s) = %s, want %s", sub, got, want)
		}
	}
}

func TestOpenDetectsSplit(t *testing.T) {
	d := t.TempDir()
	if q := Open(d); q.Split != DefaultSplit {
		t.Fatalf("empty dir split = %d", q.Split)
	}
	for i := 0; i < 101; i++ {
		if err := os.MkdirAll(filepath.Join(d, "mess", strconv.Itoa(i)), 0750); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(d, "mess", "stray"), nil, 0644)
	os.Mkdir(filepath.Join(d, "mess", "007"), 0750)
	if q := Open(d); q.Split != 101 {
		t.Fatalf("split = %d, want 101", q.Split)
	}
	// A lost subdirectory in mess/ must not change the split: info/ still has it.
	os.MkdirAll(filepath.Join(d, "info", "100"), 0700)
	os.Remove(filepath.Join(d, "mess", "100"))
	os.Remove(filepath.Join(d, "mess", "50"))
	if q := Open(d); q.Split != 101 {
		t.Fatalf("split with mess/50 and mess/100 missing = %d, want 101", q.Split)
	}
}
