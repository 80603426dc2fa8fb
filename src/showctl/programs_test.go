package showctl_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/notqmail/notqmail/src/rcpthosts"
	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/users"
)

// TestAdminProgramsInSandbox runs the real qmail-newu, qmail-newmrh, qmail-pw2u,
// qmail-showctl and maildirmake in a sandbox home, where they run as its owner (nobody,
// when the test runs as root).
func TestAdminProgramsInSandbox(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	write := func(rel, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(h.Dir, rel), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(stdin string, prog string, args ...string) string {
		t.Helper()
		cmd := h.Command(prog, args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("%s %q: %v: %s", prog, args, err, ee.Stderr)
			}
			t.Fatalf("%s %q: %v", prog, args, err)
		}
		return string(out)
	}
	ownedByOwner := func(path string, mode os.FileMode) {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != h.UID || (mode != 0 && fi.Mode().Perm() != mode) {
			t.Errorf("%s: uid %d mode %v; want uid %d mode %v", path, st.Uid, fi.Mode().Perm(), h.UID, mode)
		}
	}

	// qmail-pw2u | qmail-newu, then the lookup qmail-lspawn does.
	alias := filepath.Join(h.Dir, "alias")
	bob := h.UserHome("alice") // owned by the sandbox owner
	passwd := fmt.Sprintf("alias:x:%d:%d::%s:/bin/false\nbob:x:%d:%d::%s:/bin/sh\n", h.UID, h.GID, alias, h.UID, h.GID, bob)
	assign := run(passwd, "qmail-pw2u")
	if !strings.Contains(assign, fmt.Sprintf("=bob:bob:%d:%d:%s:::\n", h.UID, h.GID, bob)) || !strings.HasSuffix(assign, "\n.\n") {
		t.Fatalf("qmail-pw2u output:\n%s", assign)
	}
	write("users/assign", assign)
	run("", "qmail-newu")
	cdbPath := filepath.Join(h.Dir, "users", "cdb")
	ownedByOwner(cdbPath, 0o644)
	a, ok, err := users.Lookup(cdbPath, "Bob-Lists")
	want := users.Assignment{User: "bob", UID: h.UID, GID: h.GID, Home: bob, Dash: "-", Ext: "Lists"}
	if err != nil || !ok || a != want {
		t.Errorf("Lookup(Bob-Lists) = %+v, %v, %v; want %+v", a, ok, err, want)
	}

	// qmail-newmrh, then the check qmail-smtpd does.
	write("control/morercpthosts", "More.Example\n")
	run("", "qmail-newmrh")
	ownedByOwner(filepath.Join(h.Dir, "control", "morercpthosts.cdb"), 0o644)
	m, err := rcpthosts.Open(filepath.Join(h.Dir, "control"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !m.Accept("more.example") || !m.Accept(h.Domain) || m.Accept("other.example") {
		t.Error("rcpthosts and morercpthosts.cdb are not both in effect")
	}

	// qmail-showctl.
	write("control/conccurencyremote", "5\n") // misspelled
	out := run("", "qmail-showctl")
	id := fmt.Sprint(h.UID)
	for _, want := range []string{
		"qmail home directory: " + h.Dir + ".\n",
		"user ids: " + strings.Repeat(id+", ", 7) + id + ".\n",
		"\nme: My name is " + h.Domain + ".\n",
		"\nmorercpthosts: \nSMTP clients may send messages to recipients at More.Example.\n",
		"\nmorercpthosts.cdb: Modified recently enough; hopefully up to date.\n",
		"\nconccurencyremote: I have no idea what this file does.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("qmail-showctl output lacks %q:\n%s", want, out)
		}
	}

	// maildirmake, as the owner, refusing an existing directory.
	md := filepath.Join(h.UserHome("alice"), "Other")
	run("", "maildirmake", md)
	for _, d := range []string{md, filepath.Join(md, "new")} {
		ownedByOwner(d, 0o700)
	}
	if err := h.Command("maildirmake", md).Run(); err == nil {
		t.Error("maildirmake over an existing maildir succeeded")
	}
}
