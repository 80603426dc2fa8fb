package queue

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

func newQueue(t *testing.T, split int) Queue {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "queue")
	if err := Create(dir, split, Owners{Qmailq: os.Geteuid(), Qmails: os.Geteuid(), Qmailr: os.Geteuid(), Qmail: os.Getegid()}); err != nil {
		t.Fatal(err)
	}
	return Open(dir)
}

var testCaller = Caller{UID: 7, PID: 4242, Invoked: "by uid 7", Time: time.Date(2026, 1, 5, 1, 2, 3, 0, time.UTC)}

const testEnv = "Fbob@example.org\x00Talice@example.net\x00Tcarol@example.com\x00\x00"

// files lists every regular file under the queue, except lock/.
func files(t *testing.T, q Queue) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(q.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if d.IsDir() && d.Name() == "lock" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(q.Dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func TestEnqueue(t *testing.T) {
	q := newQueue(t, 23)
	if err := Enqueue(q, strings.NewReader("Subject: x\n\nhi\n"), strings.NewReader(testEnv), testCaller); err != nil {
		t.Fatal(err)
	}
	ids, err := q.Todo()
	if err != nil || len(ids) != 1 {
		t.Fatalf("todo: %v %v", ids, err)
	}
	id := ids[0]
	// The id is the message file's inode number.
	fi, err := os.Stat(q.Path("mess", id))
	if err != nil {
		t.Fatal(err)
	}
	if ino := fi.Sys().(*syscall.Stat_t).Ino; ino != id {
		t.Errorf("id %d, inode %d", id, ino)
	}
	mess, _ := os.ReadFile(q.Path("mess", id))
	want := "Received: (qmail 4242 invoked by uid 7); 5 Jan 2026 01:02:03 -0000\nSubject: x\n\nhi\n"
	if string(mess) != want {
		t.Errorf("mess = %q, want %q", mess, want)
	}
	todo, _ := os.ReadFile(q.Path("todo", id))
	if wantEnv := "u7\x00p4242\x00" + testEnv[:len(testEnv)-1]; string(todo) != wantEnv {
		t.Errorf("todo = %q, want %q", todo, wantEnv)
	}
	// intd/<id> and todo/<id> are one file; the pid file is gone.
	a, _ := os.Stat(q.Path("intd", id))
	b, _ := os.Stat(q.Path("todo", id))
	if a == nil || b == nil || !os.SameFile(a, b) {
		t.Error("intd and todo are not the same file")
	}
	if got := files(t, q); len(got) != 3 {
		t.Errorf("queue holds %v, want mess, intd and todo", got)
	}
	env, err := q.ReadEnvelope(id)
	if err != nil || env.UID != 7 || env.PID != 4242 || env.Sender != "bob@example.org" ||
		strings.Join(env.Recipients, ",") != "alice@example.net,carol@example.com" {
		t.Errorf("ReadEnvelope = %+v, %v", env, err)
	}
	// A second message gets its own id.
	if err := Enqueue(q, strings.NewReader(""), strings.NewReader("F\x00\x00"), testCaller); err != nil {
		t.Fatal(err)
	}
	if ids, _ := q.Todo(); len(ids) != 2 {
		t.Errorf("todo: %v", ids)
	}
}

func TestReceivedLine(t *testing.T) {
	c := Caller{PID: 1, Invoked: "from network", Time: time.Date(2025, 12, 31, 23, 59, 9, 0, time.FixedZone("x", 3600))}
	if got, want := ReceivedLine(c), "Received: (qmail 1 invoked from network); 31 Dec 2025 22:59:09 -0000\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, c := range []struct {
		uid     int
		sandbox bool
		want    string
	}{
		{10, false, "by alias"}, {11, false, "from network"}, {12, false, "for bounce"},
		{0, false, "by uid 0"}, {10, true, "by uid 10"}, {12, true, "by uid 12"},
	} {
		if got := Invoked(c.uid, 10, 11, 12, c.sandbox); got != c.want {
			t.Errorf("Invoked(%d, sandbox=%v) = %q, want %q", c.uid, c.sandbox, got, c.want)
		}
	}
}

// Every failure gives its exit code and leaves no file behind.
func TestEnqueueFailures(t *testing.T) {
	big := strings.Repeat("a", MaxAddr)
	cases := []struct {
		name  string
		setup func(q *Queue)
		msg   io.Reader
		env   string
		code  int
	}{
		{"no queue dir", func(q *Queue) { os.RemoveAll(q.Dir) }, nil, testEnv, ExitQueueDir},
		{"no pid dir", func(q *Queue) { os.Remove(filepath.Join(q.Dir, "pid")) }, nil, testEnv, ExitPid},
		{"no mess dir", func(q *Queue) { os.RemoveAll(filepath.Join(q.Dir, "mess")) }, nil, testEnv, ExitMess},
		{"no intd dir", func(q *Queue) { os.Remove(filepath.Join(q.Dir, "intd")) }, nil, testEnv, ExitIntd},
		{"no todo dir", func(q *Queue) { os.Remove(filepath.Join(q.Dir, "todo")) }, nil, testEnv, ExitTodo},
		{"all pid names taken", func(q *Queue) {
			for seq := 1; seq < 10; seq++ {
				os.WriteFile(filepath.Join(q.Dir, "pid", "4242."+strconv.FormatInt(testCaller.Time.Unix(), 10)+"."+strconv.Itoa(seq)), nil, 0644)
			}
		}, nil, testEnv, ExitPid},
		{"message read error", nil, iotest.TimeoutReader(strings.NewReader(strings.Repeat("x", 100000))), testEnv, ExitRead},
		{"empty envelope", nil, nil, "", ExitRead},
		{"envelope cut in sender", nil, nil, "Fbob@exa", ExitRead},
		{"envelope cut before terminator", nil, nil, "Fbob@example.org\x00Ta@b\x00", ExitRead},
		{"envelope without F", nil, nil, "Tbob@example.org\x00\x00", ExitEnvelope},
		{"bad record", nil, nil, "Fbob@example.org\x00Xa@b\x00\x00", ExitEnvelope},
		{"sender too long", nil, nil, "F" + big + "\x00\x00", ExitAddrTooLong},
		{"recipient too long", nil, nil, "F\x00T" + big + "\x00\x00", ExitAddrTooLong},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := newQueue(t, 3)
			if c.setup != nil {
				c.setup(&q)
			}
			msg := c.msg
			if msg == nil {
				msg = strings.NewReader("hello\n")
			}
			err := Enqueue(q, msg, strings.NewReader(c.env), testCaller)
			if Code(err) != c.code {
				t.Fatalf("err = %v (code %d), want code %d", err, Code(err), c.code)
			}
			var ee *ExitError
			if !errors.As(err, &ee) || ee.Error() == "" {
				t.Errorf("error %v is not an ExitError", err)
			}
			if _, serr := os.Stat(q.Dir); serr == nil {
				if left := files(t, q); len(left) != 0 && c.name != "all pid names taken" {
					t.Errorf("left behind: %v", left)
				}
			}
		})
	}
	// The longest address qmail-queue takes is MaxAddr-1 bytes.
	q := newQueue(t, 3)
	ok := strings.Repeat("a", MaxAddr-1)
	if err := Enqueue(q, strings.NewReader(""), strings.NewReader("F"+ok+"\x00T"+ok+"\x00\x00"), testCaller); err != nil {
		t.Errorf("address of %d bytes: %v", MaxAddr-1, err)
	}
}

func TestTrigger(t *testing.T) {
	q := newQueue(t, 3)
	// Nobody listening (ENXIO): queueing still succeeds, without blocking.
	if err := Enqueue(q, strings.NewReader("a\n"), strings.NewReader(testEnv), testCaller); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Open(q.Trigger(), syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := Enqueue(q, strings.NewReader("b\n"), strings.NewReader(testEnv), testCaller); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	n, err := syscall.Read(fd, buf)
	if err != nil || n != 1 || buf[0] != 0 {
		t.Fatalf("trigger read %d %q %v, want one NUL byte", n, buf[:max(n, 0)], err)
	}
	// A full FIFO (qmail-send not reading) must not block qmail-queue.
	w, err := syscall.Open(q.Trigger(), syscall.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := syscall.Write(w, chunk); err != nil {
			break
		}
	}
	syscall.Close(w)
	if err := Enqueue(q, strings.NewReader("c\n"), strings.NewReader(testEnv), testCaller); err != nil {
		t.Fatal(err)
	}
	if ids, _ := q.Todo(); len(ids) != 3 {
		t.Errorf("todo: %v", ids)
	}
}

func TestParseEnvelope(t *testing.T) {
	good := map[string]Envelope{
		"u0\x00p1\x00F\x00":                         {UID: 0, PID: 1},
		"Fa@b\x00Tc@d\x00":                          {UID: -1, PID: -1, Sender: "a@b", Recipients: []string{"c@d"}},
		"u5\x00p6\x00Fa@b\x00Ec1\x00Tc@d\x00Te\x00": {UID: 5, PID: 6, Sender: "a@b", Recipients: []string{"c@d", "e"}, Extra: []string{"Ec1"}},
	}
	for in, want := range good {
		got, err := ParseEnvelope([]byte(in))
		if err != nil || got.UID != want.UID || got.PID != want.PID || got.Sender != want.Sender ||
			strings.Join(got.Recipients, "|") != strings.Join(want.Recipients, "|") || strings.Join(got.Extra, "|") != strings.Join(want.Extra, "|") {
			t.Errorf("ParseEnvelope(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "Fa@b", "u0\x00p1\x00", "Ta@b\x00Fc\x00", "Fa\x00Fb\x00", "ux\x00Fa\x00", "Fa\x00\x00Tb\x00"} {
		if _, err := ParseEnvelope([]byte(in)); err == nil {
			t.Errorf("ParseEnvelope(%q) accepted", in)
		}
	}
}

// FuzzCopyEnvelope checks CopyEnvelope against its contract on any input: it never
// panics; on success it copied exactly the input up to the terminating NUL, which
// parses as an envelope with short addresses; on failure the code is 11, 54 or 91.
func FuzzCopyEnvelope(f *testing.F) {
	f.Add([]byte(testEnv))
	f.Add([]byte("F\x00\x00"))
	f.Add([]byte("Fa\x00Tb\x00"))
	f.Add([]byte("Xa\x00\x00"))
	f.Add([]byte("F" + strings.Repeat("x", 1100) + "\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		err := CopyEnvelope(w, bytes.NewReader(in))
		w.Flush()
		if err != nil {
			switch Code(err) {
			case ExitAddrTooLong, ExitRead, ExitEnvelope:
			default:
				t.Fatalf("unexpected code %d: %v", Code(err), err)
			}
			return
		}
		n := out.Len()
		if n+1 > len(in) || !bytes.Equal(out.Bytes(), in[:n]) || in[n] != 0 {
			t.Fatalf("copied %q from %q", out.Bytes(), in)
		}
		env, perr := ParseEnvelope(out.Bytes())
		if perr != nil {
			t.Fatalf("copied envelope %q does not parse: %v", out.Bytes(), perr)
		}
		for _, a := range append([]string{env.Sender}, env.Recipients...) {
			if len(a) >= MaxAddr {
				t.Fatalf("address of %d bytes accepted", len(a))
			}
		}
	})
}

// A qmail-queue held up past its deadline (stopped, or on a suspended machine) must
// not queue the message: qmail-send may already be removing its mess/ and intd/ files
// as stale, and a todo/ entry without them is a message lost after exit 0.
func TestEnqueuePastDeadline(t *testing.T) {
	q := newQueue(t, 3)
	c := testCaller
	c.Deadline = time.Now().Add(-time.Second)
	err := Enqueue(q, strings.NewReader("hello\n"), strings.NewReader(testEnv), c)
	if Code(err) != ExitTimeout {
		t.Fatalf("err = %v (code %d), want code %d", err, Code(err), ExitTimeout)
	}
	if left := files(t, q); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	c.Deadline = time.Now().Add(Death)
	if err := Enqueue(q, strings.NewReader("hello\n"), strings.NewReader(testEnv), c); err != nil {
		t.Fatalf("before the deadline: %v", err)
	}
}
