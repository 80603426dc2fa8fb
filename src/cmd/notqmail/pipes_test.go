package main

import (
	"errors"
	"io"
	"os"
	"syscall"
	"testing"
	"time"
)

// pipeFile turns an inherited pipe end into a file the runtime's poller serves:
// deadlines work (they need the poller), data and end of file arrive as before.
func TestPipeFileIsPollable(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// As qmail-start hands it over: a blocking descriptor with no *os.File around it.
	fd, err := syscall.Dup(int(r.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if err := syscall.SetNonblock(fd, false); err != nil {
		t.Fatal(err)
	}
	f := pipeFile(fd, "test pipe")
	defer f.Close()
	if err := f.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		t.Fatalf("deadline on the pipe: %v (not served by the poller)", err)
	}
	buf := make([]byte, 8)
	if _, err := f.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read of an empty pipe: %v, want a deadline error", err)
	}
	f.SetReadDeadline(time.Time{})
	go func() {
		w.Write([]byte("foop"))
		w.Close()
	}()
	got, err := io.ReadAll(f)
	if err != nil || string(got) != "foop" {
		t.Fatalf("read %q, %v", got, err)
	}
}
