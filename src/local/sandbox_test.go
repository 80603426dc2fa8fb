package local_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/sandbox"
)

// In a sandbox home, qmail-getpw gives every address to the alias user under
// QMAILHOME/alias, and qmail-local (started as root or not) delivers as the sandbox
// owner into the sandbox's maildirs.
func TestSandboxGetpwAndLocal(t *testing.T) {
	base, err := os.MkdirTemp("", "local-sandbox")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	os.Chmod(base, 0o755)
	h, err := sandbox.Create(filepath.Join(base, "qmail"), sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove()

	var out bytes.Buffer
	cmd := h.Command("qmail-getpw", "PostMaster")
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("qmail-getpw: %v", err)
	}
	f := strings.Split(out.String(), "\x00")
	want := []string{"alias", strconv.Itoa(h.UID), strconv.Itoa(h.GID), filepath.Join(h.Dir, "alias"), "-", "PostMaster", ""}
	if strings.Join(f, "|") != strings.Join(want, "|") {
		t.Fatalf("qmail-getpw = %q, want %q", f, want)
	}

	deliver := func(args ...string) (int, string) {
		t.Helper()
		m, err := os.CreateTemp(base, "msg")
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		m.WriteString("Subject: sandbox\n\nhello\n")
		m.Seek(0, 0)
		var out bytes.Buffer
		cmd := h.Command("qmail-local", append([]string{"--"}, args...)...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = m, &out, &out
		cmd.Run()
		return cmd.ProcessState.ExitCode(), out.String()
	}
	code, o := deliver(f[0], f[3], "PostMaster", f[4], f[5], h.Domain, "s@example.net", "./Maildir/")
	if code != 0 || o != "did 1+0+0\n" {
		t.Fatalf("alias delivery: exit %d, %q", code, o)
	}
	msgs, err := h.Messages("alias")
	if err != nil || len(msgs) != 1 || !bytes.HasPrefix(msgs[0].Data, []byte("Return-Path: <s@example.net>\nDelivered-To: PostMaster@"+h.Domain+"\nSubject: sandbox\n")) {
		t.Fatalf("alias maildir: %v %q", err, msgs)
	}
	if st, ok := fileOwner(msgs[0].Path); !ok || st != h.UID {
		t.Fatalf("delivered file owned by %d, want the sandbox owner %d", st, h.UID)
	}

	code, o = deliver("alice", h.UserHome("alice"), "alice", "", "", h.Domain, "", "./Maildir/")
	if code != 0 || o != "did 1+0+0\n" {
		t.Fatalf("alice: exit %d, %q", code, o)
	}
	code, o = deliver("alice", h.UserHome("alice"), "alice-nothing", "-", "nothing", h.Domain, "", "./Maildir/")
	if code != 100 || o != "Sorry, no mailbox here by that name. (#5.1.1)\n" {
		t.Fatalf("alice-nothing: exit %d, %q", code, o)
	}
}
