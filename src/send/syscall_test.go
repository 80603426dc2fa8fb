package send

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/queue"
)

// stopAndKeep stops the daemon and waits for Run to return, leaving its result for
// the harness's own cleanup; the daemon's fields can then be read without a race.
func stopAndKeep(t *testing.T, h *harness) {
	t.Helper()
	h.sigs <- syscall.SIGTERM
	err := <-h.done
	h.done <- err
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// Run in the queue directory, as qmail-send runs, the daemon names queue files
// relative to it; deliveries, bounces and clean-up work the same.
func TestRelativeQueuePaths(t *testing.T) {
	q := makeQueue(t)
	os.MkdirAll(filepath.Join(q.Dir, queue.SpareS), 0700)
	t.Chdir(q.Dir)
	h := startDaemon(t, q, 604800)
	ok := enqueue(t, q, "joe@remote.example", "ok1@here.example", "ok2@far.example")
	bad := enqueue(t, q, "joe@remote.example", "perm@here.example", "ok3@far.example")
	h.pull()
	waitFor(t, h, "messages to leave the queue", func() bool { return gone(q, ok) && gone(q, bad) })
	stopAndKeep(t, h)
	if !h.d.relQueue {
		t.Error("daemon in its queue directory does not use relative paths")
	}
	if got, want := h.d.fn("local", 1234), "local/"+fmt.Sprint(1234%queue.DefaultSplit)+"/1234"; got != want {
		t.Errorf("fn = %q, want %q", got, want)
	}
	if got := h.d.fn("todo", 1234); got != "todo/1234" {
		t.Errorf("fn = %q, want todo/1234", got)
	}
	for _, r := range []string{"ok1@here.example", "perm@here.example"} {
		if n := h.spawn[Local].count(r); n != 1 {
			t.Errorf("%s tried %d times", r, n)
		}
	}
	for _, r := range []string{"ok2@far.example", "ok3@far.example"} {
		if n := h.spawn[Remote].count(r); n != 1 {
			t.Errorf("%s tried %d times", r, n)
		}
	}
	if b := h.inj.all(); len(b) != 1 || !strings.Contains(b[0].msg, "<perm@here.example>:\n") {
		t.Errorf("bounces: %+v", b)
	}
	// Spares recycled into spare/s by relative path are real entries there.
	ents, err := os.ReadDir(filepath.Join(q.Dir, queue.SpareS))
	if err != nil || len(ents) == 0 {
		t.Errorf("spare/s after deliveries: %d entries, %v", len(ents), err)
	}
	log := h.log.String()
	for _, want := range []string{fmt.Sprintf("end msg %d\n", ok), fmt.Sprintf("end msg %d\n", bad), fmt.Sprintf("bounce msg %d qp 4242\n", bad)} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// Run elsewhere (tests, or a queue reached another way), the daemon keeps absolute
// paths, which name the same files as queue.Queue.Path.
func TestAbsoluteQueuePathsElsewhere(t *testing.T) {
	q := makeQueue(t)
	t.Chdir(t.TempDir())
	h := startDaemon(t, q, 604800)
	id := enqueue(t, q, "joe@remote.example", "ok@here.example")
	h.pull()
	waitFor(t, h, "message to leave the queue", func() bool { return gone(q, id) })
	stopAndKeep(t, h)
	if h.d.relQueue {
		t.Error("relative paths outside the queue directory")
	}
	for _, sub := range []string{"local", "info", "todo", "bounce", "mess"} {
		if got, want := h.d.fn(sub, 98765), q.Path(sub, 98765); got != want {
			t.Errorf("fn(%s) = %q, want %q", sub, got, want)
		}
		if got, want := h.d.rel(sub, 98765), q.Rel(sub, 98765); got != want {
			t.Errorf("rel(%s) = %q, want %q", sub, got, want)
		}
	}
}

func TestInDir(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if !inDir(dir) || !inDir(".") {
		t.Error("inDir false for the working directory")
	}
	if inDir(t.TempDir()) || inDir(filepath.Join(dir, "missing")) {
		t.Error("inDir true for another directory")
	}
}

// rawFile reads a file as os.File does: whole records through bufio, then io.EOF;
// its mtime is the file's.
func TestRawFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	want := bytes.Repeat([]byte("Tsomeone@example.org\x00"), 1000) // several reads' worth
	if err := os.WriteFile(p, want, 0600); err != nil {
		t.Fatal(err)
	}
	f, err := openRawFile(p, false, false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(bufio.NewReaderSize(f, 4096))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, %v; want %d", len(got), err, len(want))
	}
	if n, err := f.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("read after the end: %d, %v", n, err)
	}
	st, _ := os.Stat(p)
	if m, err := f.mtime(); err != nil || m != st.ModTime().Unix() {
		t.Errorf("mtime %d, %v; want %d", m, err, st.ModTime().Unix())
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := f.Read(make([]byte, 1)); err == nil {
		t.Error("read after Close succeeded")
	}
	if _, err := openRawFile(p+"-missing", false, true); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("opening a missing file: %v", err)
	}
}

// A file of qmail-send's own opened with noatime is read without a change of its
// access time, which would dirty its inode for the next sync to write again.
func TestRawFileNoatime(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("Fjoe@example.org\x00"), 0600); err != nil {
		t.Fatal(err)
	}
	// An access time older than the modification time: any read would change it
	// under relatime (and strictatime).
	old := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(p, old, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, rw := range []bool{false, true} {
		f, err := openRawFile(p, rw, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if at := time.Unix(st.Atim.Sec, st.Atim.Nsec); !at.Equal(old) {
			t.Errorf("rw=%v: access time %v after the read, want %v unchanged", rw, at, old)
		}
	}
}

// writeAtRaw patches a byte in place, as markDone needs, and fails on a missing file.
func TestWriteAtRaw(t *testing.T) {
	p := filepath.Join(t.TempDir(), "local")
	os.WriteFile(p, []byte("Ta@x\x00Tb@y\x00"), 0600)
	if err := writeAtRaw(p, []byte{'D'}, 5); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "Ta@x\x00Db@y\x00" {
		t.Errorf("after writeAtRaw: %q", b)
	}
	if err := writeAtRaw(p+"-missing", []byte{'D'}, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("writing a missing file: %v", err)
	}
}

// writeRecorder keeps each write separately.
type writeRecorder struct{ writes [][]byte }

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

// logBuffer writes the lines it was given, in order and unchanged, in writes of whole
// lines no longer than PIPE_BUF (a longer line alone), and nothing before flush.
func TestLogBuffer(t *testing.T) {
	rec := &writeRecorder{}
	b := &logBuffer{w: rec}
	l := Logger{W: b}
	var want bytes.Buffer
	plain := Logger{W: &want}
	long := strings.Repeat("x", 5000)
	for i := 0; i < 200; i++ {
		for _, lg := range []Logger{l, plain} {
			lg.NewMsg(uint64(i))
			lg.Starting(uint64(i), uint64(i), Local, "a@b")
			if i == 100 {
				lg.Warning(long)
			}
		}
		if i == 0 && len(rec.writes) != 0 {
			t.Fatal("lines written before flush")
		}
	}
	b.flush()
	b.flush() // nothing left: no empty write
	var got []byte
	for _, w := range rec.writes {
		if len(w) == 0 || w[len(w)-1] != '\n' {
			t.Errorf("write of %d bytes does not end a line", len(w))
		}
		if len(w) > pipeBuf && strings.Count(string(w), "\n") != 1 {
			t.Errorf("write of %d bytes (%d lines) beyond PIPE_BUF", len(w), strings.Count(string(w), "\n"))
		}
		got = append(got, w...)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Error("batched log differs from the line-by-line log")
	}
	if len(rec.writes) >= 400 {
		t.Errorf("%d writes for 401 lines: not batched", len(rec.writes))
	}
}

// What preprocessing hands the first pass instead of info/ is what info/ says: the
// sender, and the birth as info/'s final mtime, for new files and for spares cut to
// length alike.
func TestPreparedInfoMatchesInfoFile(t *testing.T) {
	q := makeQueue(t)
	makeSpares(t, q, 2) // longer old data: the first two info/ files are truncated
	rw := &Rewriter{EnvNoAtHost: "here.example", Locals: map[string]bool{"here.example": true},
		PercentHack: map[string]bool{}, VirtualDoms: map[string]string{}}
	d := &Daemon{Queue: q, Config: &Config{Rewriter: rw}}
	sy, err := openSyncer(q.Dir)
	if err != nil {
		t.Fatal(err)
	}
	d.commits = newCommits(sy)
	defer d.commits.close()
	d.spares = openSpares(filepath.Join(q.Dir, queue.SpareS), umaskedMode(), d.commits)
	for i, sender := range []string{"joe@remote.example", "", "a-much-longer-sender-address-than-the-others@remote.example"} {
		id := enqueue(t, q, sender, fmt.Sprintf("ok%d@here.example", i))
		res := d.prepare(id)
		if res.warning != "" {
			t.Fatalf("prepare %d: %s", id, res.warning)
		}
		snd, birth, ok := d.getInfo(id)
		if !ok || !res.info || res.sender != snd || res.birth != birth {
			t.Errorf("message %d: prepared sender %q birth %d (info %v); info/ says %q, %d (%v)",
				id, res.sender, res.birth, res.info, snd, birth, ok)
		}
	}
}

// A delivered recipient is marked D in its channel file whether the job kept the
// file open from its pass or has to open it again (beyond keepMax); a deferred one
// stays T.
func TestMarkDoneKeptOrReopened(t *testing.T) {
	for _, keep := range []int{128, 0} {
		t.Run(fmt.Sprint("keepMax=", keep), func(t *testing.T) {
			old := keepMax
			keepMax = keep
			t.Cleanup(func() { keepMax = old })
			q := makeQueue(t)
			h := startDaemon(t, q, 604800)
			id := enqueue(t, q, "joe@remote.example", "ok1@here.example", "temp1@here.example", "ok2@here.example")
			h.pull()
			want := "Dok1@here.example\x00Ttemp1@here.example\x00Dok2@here.example\x00"
			waitFor(t, h, "two recipients marked done", func() bool {
				b, _ := os.ReadFile(q.Path("local", id))
				return string(b) == want
			})
			waitFor(t, h, "the deferral", func() bool {
				return strings.Contains(h.log.String(), ": deferral: Temporary_failure_here./")
			})
			stopAndKeep(t, h)
			if b, _ := os.ReadFile(q.Path("local", id)); string(b) != want {
				t.Errorf("local file %q, want %q", b, want)
			}
			if h.d.keptFiles != 0 {
				t.Errorf("%d channel files still kept after every delivery finished", h.d.keptFiles)
			}
		})
	}
}
