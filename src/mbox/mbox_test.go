package mbox

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// quoteLines is qmail's line-by-line rule, the reference the streaming Quoter must
// match: '>' before any line that is "From " after optional '>'s; a newline added to
// an unterminated last line.
func quoteLines(msg []byte) []byte {
	var out []byte
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line = msg[:i+1]
		}
		msg = msg[len(line):]
		if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
			out = append(out, '>')
		}
		out = append(out, line...)
		if line[len(line)-1] != '\n' {
			out = append(out, '\n')
		}
	}
	return out
}

func quoteStream(t testing.TB, msg []byte, chunk int) []byte {
	var b bytes.Buffer
	q := NewQuoter(&b)
	for len(msg) > 0 {
		n := min(chunk, len(msg))
		if _, err := q.Write(msg[:n]); err != nil {
			t.Fatal(err)
		}
		msg = msg[n:]
	}
	if err := q.Finish(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestQuoter(t *testing.T) {
	cases := []string{
		"",
		"From a\n",
		"From me\nnot From\n>From x\n>>>From y\nFrom\nFro\n>Fro\n\nFrom ",
		"no newline",
		">>>",
		"F",
		"From",
		"\n\n\nFrom x",
		strings.Repeat(">", 2000) + "From deep\n",
	}
	for _, c := range cases {
		want := quoteLines([]byte(c))
		for _, chunk := range []int{1, 2, 3, 7, 4096} {
			if got := quoteStream(t, []byte(c), chunk); !bytes.Equal(got, want) {
				t.Errorf("quote(%q) chunk %d = %q, want %q", c, chunk, got, want)
			}
		}
	}
}

func FuzzQuoter(f *testing.F) {
	f.Add([]byte("From x\n>From y\nz"), 3)
	f.Add([]byte(">>From"), 1)
	f.Fuzz(func(t *testing.T, msg []byte, chunk int) {
		if chunk <= 0 || chunk > 1<<16 {
			chunk = 1
		}
		if got, want := quoteStream(t, msg, chunk), quoteLines(msg); !bytes.Equal(got, want) {
			t.Fatalf("quote(%q) = %q, want %q", msg, got, want)
		}
	})
}

func TestFromLine(t *testing.T) {
	at := time.Date(2026, 11, 2, 3, 4, 5, 0, time.UTC)
	if got := FromLine("a b\tc@d", at); got != "From a-b-c@d Mon Nov 02 03:04:05 2026\n" {
		t.Fatalf("FromLine = %q", got)
	}
	if got := FromLine("", at); got != "From MAILER-DAEMON Mon Nov 02 03:04:05 2026\n" {
		t.Fatalf("FromLine(empty) = %q", got)
	}
}

func TestDeliverAppends(t *testing.T) {
	p := filepath.Join(t.TempDir(), "Mailbox")
	if err := Deliver(p, []byte("From a@b Thu Jan 01 00:00:00 1970\n"), strings.NewReader("Subject: 1\n\nFrom here\nend")); err != nil {
		t.Fatal(err)
	}
	if err := Deliver(p, []byte("From c@d Thu Jan 01 00:00:00 1970\n"), strings.NewReader("Subject: 2\n\nbody\n")); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	want := "From a@b Thu Jan 01 00:00:00 1970\nSubject: 1\n\n>From here\nend\n\n" +
		"From c@d Thu Jan 01 00:00:00 1970\nSubject: 2\n\nbody\n\n"
	if string(got) != want {
		t.Fatalf("mbox = %q\nwant %q", got, want)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}

func TestDeliverDevNull(t *testing.T) {
	if err := Deliver("/dev/null", []byte("From x\n"), strings.NewReader("hi\n")); err != nil {
		t.Fatal(err)
	}
}

func TestDeliverOpenFails(t *testing.T) {
	err := Deliver(filepath.Join(t.TempDir(), "no", "such"), nil, strings.NewReader("x"))
	var e *Error
	if !errors.As(err, &e) || !strings.HasPrefix(e.Msg, "Unable to open ") || !strings.HasSuffix(e.Msg, "(#4.2.1)") {
		t.Fatalf("err = %v", err)
	}
}

type brokenReader struct{ sent bool }

func (r *brokenReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		return copy(p, "partial line of a message\n"), nil
	}
	return 0, syscall.EIO
}

func TestDeliverReadErrorTruncatesBack(t *testing.T) {
	p := filepath.Join(t.TempDir(), "Mailbox")
	old := "From a Thu Jan 01 00:00:00 1970\nold\n\n"
	os.WriteFile(p, []byte(old), 0o600)
	err := Deliver(p, []byte("From b\n"), &brokenReader{})
	var e *Error
	if !errors.As(err, &e) || e.Msg != "Unable to read message: input/output error. (#4.3.0)" {
		t.Fatalf("err = %v", err)
	}
	if got, _ := os.ReadFile(p); string(got) != old {
		t.Fatalf("mbox not restored: %q", got)
	}
}

func TestDeliverWaitsForLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "Mailbox")
	holder, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	// flock locks belong to the open file, so another open of the same file in this
	// process contends with the holder just as another process would.
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	err = deliver(p, []byte("From x\n"), strings.NewReader("m\n"), 50*time.Millisecond)
	var e *Error
	if !errors.As(err, &e) || e.Msg != "File has been locked for 30 seconds straight. (#4.3.0)" {
		t.Fatalf("err = %v", err)
	}
	if fi, _ := os.Stat(p); fi.Size() != 0 {
		t.Fatal("wrote while locked")
	}
	syscall.Flock(int(holder.Fd()), syscall.LOCK_UN)
	if err := deliver(p, []byte("From x\n"), strings.NewReader("m\n"), time.Minute); err != nil {
		t.Fatal(err)
	}
}

func TestDeliverDiskFullTruncatesBack(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tiny tmpfs needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	p := filepath.Join(mnt, "Mailbox")
	old := "From a Thu Jan 01 00:00:00 1970\nold\n\n"
	os.WriteFile(p, []byte(old), 0o600)
	big := bytes.Repeat([]byte("0123456789abcdef\n"), 20000)
	err := Deliver(p, []byte("From b\n"), bytes.NewReader(big))
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, syscall.ENOSPC) || !strings.HasPrefix(e.Msg, "Unable to write "+p+": no space left on device.") {
		t.Fatalf("err = %v", err)
	}
	if got, _ := os.ReadFile(p); string(got) != old {
		t.Fatalf("mbox not truncated back: %d bytes", len(got))
	}
}
