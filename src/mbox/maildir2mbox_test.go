package mbox

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func makeMaildir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "Maildir")
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func put(t *testing.T, dir, name, body string, mtime time.Time) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestFromMaildir(t *testing.T) {
	dir := makeMaildir(t)
	t1 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	t2 := t1.Add(time.Hour)
	t3 := t2.Add(time.Hour)
	put(t, dir, "new/b", "Return-Path: <a b@x.example>\nSubject: two\n\nFrom me\nno newline", t2)
	put(t, dir, "cur/a:2,S", "Subject: one\n\nbody\n", t1)
	put(t, dir, "new/c", "Return-Path: <>\nSubject: bounce\n\n", t3)
	put(t, dir, "new/.hidden", "skip me\n", t1)
	// A file just delivered (this second) waits for the next run.
	if err := os.WriteFile(filepath.Join(dir, "new", "fresh"), []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "tmp", "stale")
	put(t, dir, "tmp/stale", "old", time.Now().Add(-40*time.Hour))
	put(t, dir, "tmp/recent", "new", time.Now())

	mbox := filepath.Join(t.TempDir(), "mbox")
	os.WriteFile(mbox, []byte("From old Thu Jan 01 00:00:00 1970\nold\n\n"), 0o600)
	var warn bytes.Buffer
	if err := FromMaildir(dir, mbox, "../mbox.tmp", &warn); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(mbox)
	want := "From old Thu Jan 01 00:00:00 1970\nold\n\n" +
		"From XXX Wed Mar 04 05:06:07 2026\nSubject: one\n\nbody\n\n" +
		"From a-b@x.example Wed Mar 04 06:06:07 2026\nReturn-Path: <a b@x.example>\nSubject: two\n\n>From me\nno newline\n\n" +
		"From MAILER-DAEMON Wed Mar 04 07:06:07 2026\nReturn-Path: <>\nSubject: bounce\n\n\n"
	if string(got) != want {
		t.Fatalf("mbox:\n%q\nwant\n%q", got, want)
	}
	left, _ := os.ReadDir(filepath.Join(dir, "new"))
	if len(left) != 2 { // .hidden and fresh
		t.Fatalf("new/ has %d entries left", len(left))
	}
	if cur, _ := os.ReadDir(filepath.Join(dir, "cur")); len(cur) != 0 {
		t.Fatal("cur/ not emptied")
	}
	if _, err := os.Stat(stale); err == nil {
		t.Fatal("stale tmp file kept")
	}
	if _, err := os.Stat(filepath.Join(dir, "tmp", "recent")); err != nil {
		t.Fatal("recent tmp file removed")
	}
	if warn.Len() != 0 {
		t.Fatalf("warnings: %s", warn.String())
	}
}

func TestFromMaildirNothingNew(t *testing.T) {
	dir := makeMaildir(t)
	mbox := filepath.Join(t.TempDir(), "mbox")
	if err := FromMaildir(dir, mbox, mbox+".tmp", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mbox); err == nil {
		t.Fatal("mbox created with nothing to move")
	}
}

func TestFromMaildirFailureKeepsMessages(t *testing.T) {
	dir := makeMaildir(t)
	put(t, dir, "new/a", "Subject: one\n\nbody\n", time.Now().Add(-time.Hour))
	mbox := filepath.Join(t.TempDir(), "mbox")
	err := FromMaildir(dir, mbox, filepath.Join(t.TempDir(), "no", "such", "tmp"), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "unable to create ") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "new", "a")); err != nil {
		t.Fatal("message removed although the mbox was not written")
	}
}

func TestFromMaildirMissing(t *testing.T) {
	err := FromMaildir(filepath.Join(t.TempDir(), "nope"), "m", "t", nil)
	if err == nil || !strings.Contains(err.Error(), syscall.ENOENT.Error()) {
		t.Fatalf("err = %v", err)
	}
}
