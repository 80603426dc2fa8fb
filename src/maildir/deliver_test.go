package maildir

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func mkmaildir(t *testing.T, dir string) string {
	t.Helper()
	for _, sub := range []string{"", "tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	return n
}

func TestDeliver(t *testing.T) {
	md := mkmaildir(t, filepath.Join(t.TempDir(), "Maildir"))
	name, err := Deliver(md, []byte("Delivered-To: joe@example.org\n"), strings.NewReader("Subject: hi\n\nbody\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(md, "new", name))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "Delivered-To: joe@example.org\nSubject: hi\n\nbody\n" {
		t.Fatalf("content %q", got)
	}
	if n := entries(t, filepath.Join(md, "tmp")); len(n) != 0 {
		t.Fatalf("tmp/ not empty: %v", n)
	}
	fi, _ := os.Stat(filepath.Join(md, "new", name))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if strings.ContainsAny(name, "/:") {
		t.Fatalf("bad name %q", name)
	}
}

func TestDeliverUniqueNames(t *testing.T) {
	md := mkmaildir(t, t.TempDir())
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		name, err := Deliver(md, nil, strings.NewReader("x\n"))
		if err != nil {
			t.Fatal(err)
		}
		if seen[name] {
			t.Fatalf("name %s used twice", name)
		}
		seen[name] = true
	}
	if n := len(entries(t, filepath.Join(md, "new"))); n != 50 {
		t.Fatalf("%d files in new/", n)
	}
}

func TestUniqueNameEscapesHost(t *testing.T) {
	n := uniqueName(timeZero, "a/b:c")
	if !strings.HasSuffix(n, `.a\057b\072c`) {
		t.Fatalf("name %q", n)
	}
}

func TestDeliverNoMaildir(t *testing.T) {
	_, err := Deliver(filepath.Join(t.TempDir(), "nope"), nil, strings.NewReader("x"))
	var nm *NoMaildirError
	if !errors.As(err, &nm) {
		t.Fatalf("err = %v", err)
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n > 0 {
		r.n--
		return copy(p, "data\n"), nil
	}
	return 0, syscall.EIO
}

func TestDeliverReadErrorLeavesNothing(t *testing.T) {
	md := mkmaildir(t, t.TempDir())
	_, err := Deliver(md, nil, &failingReader{n: 3})
	var re *ReadError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v", err)
	}
	if n := entries(t, filepath.Join(md, "tmp")); len(n) != 0 {
		t.Fatalf("tmp/ not cleaned: %v", n)
	}
	if n := entries(t, filepath.Join(md, "new")); len(n) != 0 {
		t.Fatalf("new/ has %v", n)
	}
}

// A full disk is a real tmpfs of 64 KiB when the test runs as root; otherwise the test
// is skipped (the end-to-end tests cover an unwritable tmp/ as an unprivileged user).
func TestDeliverDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tiny tmpfs needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	md := mkmaildir(t, filepath.Join(mnt, "Maildir"))
	big := bytes.Repeat([]byte("0123456789abcdef\n"), 20000) // 340 KB
	_, err := Deliver(md, nil, bytes.NewReader(big))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("err = %v, want ENOSPC", err)
	}
	if n := entries(t, filepath.Join(md, "tmp")); len(n) != 0 {
		t.Fatalf("tmp/ not cleaned: %v", n)
	}
	if n := entries(t, filepath.Join(md, "new")); len(n) != 0 {
		t.Fatalf("new/ has %v", n)
	}
	// The space is back: a small message now goes through.
	if _, err := Deliver(md, nil, io.LimitReader(bytes.NewReader(big), 100)); err != nil {
		t.Fatal(err)
	}
}

var timeZero = time.Unix(0, 0)

func TestUniqueNamesSortByTime(t *testing.T) {
	a := uniqueName(time.Unix(1700000000, 99_000), "h")
	b := uniqueName(time.Unix(1700000000, 100_000_000), "h")
	if !(a < b) || !strings.HasPrefix(a, "1700000000.M000099P") {
		t.Fatalf("%q should sort before %q", a, b)
	}
}
