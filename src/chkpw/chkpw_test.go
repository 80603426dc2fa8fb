package chkpw_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/notqmail/notqmail/src/chkpw"
	"github.com/notqmail/notqmail/src/sandbox"
	"golang.org/x/crypto/bcrypt"
)

func hash(t *testing.T, pass string) string {
	t.Helper()
	h, err := chkpw.Hash(pass, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestParseRefusesWhatItDoesNotUnderstand(t *testing.T) {
	h := hash(t, "pw")
	for _, c := range []struct{ in, want string }{
		{"alice\n", "f:1: want name:hash"},
		{"# c\n\nalice:plain\n", "f:3: not a bcrypt hash"},
		{"alice:" + h + ":x:1:/home\n", "uid is not a number"},
		{"alice:" + h + ":1:1:home\n", "home must be an absolute path"},
		{"a b:" + h + "\n", "white space"},
	} {
		_, err := chkpw.Parse(strings.NewReader(c.in), "f")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.in, err, c.want)
		}
	}
	es, err := chkpw.Parse(strings.NewReader("# users\nalice:"+h+"\nbob:"+h+":1000:1000:/home/bob  \n"), "f")
	if err != nil || len(es) != 2 || es[1].Home != "/home/bob" || !es[1].HasAccount || es[0].HasAccount {
		t.Fatalf("%+v %v", es, err)
	}
	if chkpw.Verify(es, "alice", "pw") == nil || chkpw.Verify(es, "alice", "PW") != nil ||
		chkpw.Verify(es, "carol", "pw") != nil || chkpw.Verify(es, "alice", strings.Repeat("p", 100)) != nil {
		t.Error("Verify")
	}
}

func TestParseInput(t *testing.T) {
	for in, ok := range map[string]bool{"u\x00p\x00": true, "u\x00p\x00123\x00": true, "u\x00\x00": true, "\x00p\x00": false, "u\x00p": false, "": false} {
		_, _, err := chkpw.ParseInput([]byte(in))
		if (err == nil) != ok {
			t.Errorf("%q: %v", in, err)
		}
	}
}

// TestPasswdTool: add, change, delete and list through qmail-chkpw-passwd's code,
// with concurrent changes serialized by the lock.
func TestPasswdTool(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "passwords")
	run := func(pass string, args ...string) (int, string) {
		in := filepath.Join(t.TempDir(), "in")
		os.WriteFile(in, []byte(pass), 0o600)
		f, _ := os.Open(in)
		defer f.Close()
		var out, errb bytes.Buffer
		code := chkpw.Passwd(args, chkpw.PasswdOptions{File: file, Stdin: f, Stdout: &out, Stderr: &errb, OwnerUID: -1, OwnerG: -1, Cost: bcrypt.MinCost})
		return code, out.String() + errb.String()
	}
	if c, out := run("one\n", "add", "alice"); c != 0 {
		t.Fatal(out)
	}
	if c, out := run("x\n", "add", "alice"); c != 111 || !strings.Contains(out, "alice: user exists; use change") {
		t.Fatal(c, out)
	}
	if c, out := run("x\n", "change", "nobody-here"); c != 111 || !strings.Contains(out, "no such user; use add") {
		t.Fatal(c, out)
	}
	if c, out := run("two\n", "add", "bob", "1000", "1001", "/home/bob"); c != 0 {
		t.Fatal(out)
	}
	if c, out := run("", "add", "carol"); c != 100 || !strings.Contains(out, "no password") {
		t.Fatal(c, out)
	}
	if c, out := run("x\n", "add", "bad:name"); c != 100 {
		t.Fatal(c, out)
	}
	if c, out := run("three\n", "change", "bob"); c != 0 {
		t.Fatal(out)
	}
	// Many tools at once: every user added survives.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c, out := run("pw\n", "add", fmt.Sprintf("user%d", i)); c != 0 {
				t.Error(out)
			}
		}()
	}
	wg.Wait()
	if c, out := run("", "delete", "user3"); c != 0 {
		t.Fatal(out)
	}
	_, out := run("", "list")
	want := "alice\nbob 1000 1001 /home/bob\nuser0\nuser1\nuser2\nuser4\nuser5\nuser6\nuser7\n"
	if out != want {
		t.Fatalf("list:\n%s\nwant:\n%s", out, want)
	}
	es, err := chkpw.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if chkpw.Verify(es, "bob", "three") == nil || chkpw.Verify(es, "bob", "two") != nil || chkpw.Verify(es, "alice", "one") == nil {
		t.Error("passwords not as set")
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
}

// TestQmailChkpwProgram runs the built qmail-chkpw as a checkpassword program:
// the input on descriptor 3, the subprogram exec'd with USER and HOME on success.
func TestQmailChkpwProgram(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	file := filepath.Join(h.Dir, "control", "passwords")
	home := h.UserHome("alice") // the sandbox user can enter it
	os.WriteFile(file, []byte("alice:"+hash(t, "s3cret")+"\nbob:"+hash(t, "pw")+":0:0:"+home+"\n"), 0o600)
	os.Chown(file, h.UID, h.GID)
	check := func(input string, sub ...string) (int, string) {
		r, w, _ := os.Pipe()
		cmd := h.Command("qmail-chkpw", sub...)
		cmd.ExtraFiles = []*os.File{r}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r.Close()
		w.Write([]byte(input))
		w.Close()
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out.String()
		}
		return 0, out.String()
	}
	env := []string{"/bin/sh", "-c", `echo "user=$USER home=$HOME pwd=$(pwd)"`}
	if c, out := check("alice\x00s3cret\x00\x00", env...); c != 0 || !strings.Contains(out, "user=alice ") {
		t.Errorf("alice: %d %q", c, out)
	}
	if c, out := check("bob\x00pw\x0012345\x00", env...); c != 0 || !strings.Contains(out, "user=bob home="+home+" pwd="+home) {
		t.Errorf("bob: %d %q", c, out)
	}
	for in, want := range map[string]int{
		"alice\x00wrong\x00\x00":                   1,
		"mallory\x00s3cret\x00\x00":                1,
		"garbage":                                  2,
		strings.Repeat("x", 600) + "\x00p\x00\x00": 2,
	} {
		if c, out := check(in, "/bin/true"); c != want {
			t.Errorf("%.20q: exit %d, want %d (%s)", in, c, want, out)
		}
	}
	if c, _ := check("alice\x00s3cret\x00\x00"); c != 2 {
		t.Errorf("no subprogram: exit %d", c)
	}
	os.WriteFile(file, []byte("broken line\n"), 0o600)
	if c, out := check("alice\x00s3cret\x00\x00", "/bin/true"); c != 111 || !strings.Contains(out, "passwords:1: want name:hash") {
		t.Errorf("broken file: %d %q", c, out)
	}
}

// TestQmailChkpwBecomesTheUser: outside a sandbox and as root (as under
// qmail-popup), an account line makes qmail-chkpw take the user's uid and gid and
// only that group before running the subprogram.
func TestQmailChkpwBecomesTheUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	h := sandbox.New(t, sandbox.Options{})
	qhome := t.TempDir() // root's: not a sandbox
	os.Mkdir(filepath.Join(qhome, "control"), 0o755)
	os.WriteFile(filepath.Join(qhome, "control", "passwords"), []byte("carol:"+hash(t, "pw")+":65534:65533:/\n"), 0o600)
	cmd := exec.Command(filepath.Join(h.Bin, "qmail-chkpw"), "/bin/sh", "-c", `echo "$(id -u) $(id -g) $(id -G) $USER $HOME"`)
	cmd.Env = append(os.Environ(), "QMAILHOME="+qhome)
	r, w, _ := os.Pipe()
	cmd.ExtraFiles = []*os.File{r}
	w.Write([]byte("carol\x00pw\x00\x00"))
	w.Close()
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "65534 65533 65533 carol /" {
		t.Fatalf("%v: %q", err, out)
	}
}

// TestQmailChkpwTrustsOnlyRootsAccounts: as root, qmail-chkpw takes a uid, gid and
// home only from a passwords file that no one but root can change, and never uid 0.
// qmail-smtpd's qmaild must be able to read the file, but if it could also write
// account lines that root obeys, a compromised qmail-smtpd could log in over POP3 as
// any user, or as root.
func TestQmailChkpwTrustsOnlyRootsAccounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	h := sandbox.New(t, sandbox.Options{})
	qhome := t.TempDir() // root's: not a sandbox
	os.Mkdir(filepath.Join(qhome, "control"), 0o755)
	file := filepath.Join(qhome, "control", "passwords")
	run := func() (string, error) {
		cmd := exec.Command(filepath.Join(h.Bin, "qmail-chkpw"), "/bin/sh", "-c", `echo "ran as $(id -u)"`)
		cmd.Env = append(os.Environ(), "QMAILHOME="+qhome)
		r, w, _ := os.Pipe()
		cmd.ExtraFiles = []*os.File{r}
		w.Write([]byte("carol\x00pw\x00\x00"))
		w.Close()
		out, err := cmd.CombinedOutput()
		r.Close()
		return string(out), err
	}
	for name, setup := range map[string]func(){
		"owned by qmaild": func() {
			os.WriteFile(file, []byte("carol:"+hash(t, "pw")+":65534:65533:/\n"), 0o600)
			os.Chown(file, 65534, 65533)
		},
		"group writable": func() {
			os.WriteFile(file, []byte("carol:"+hash(t, "pw")+":65534:65533:/\n"), 0o660)
			os.Chmod(file, 0o660)
		},
		"uid 0": func() {
			os.WriteFile(file, []byte("carol:"+hash(t, "pw")+":0:0:/\n"), 0o600)
		},
	} {
		os.Remove(file)
		setup()
		out, err := run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != chkpw.ExitTemporary || strings.Contains(out, "ran as") {
			t.Errorf("%s: %v %q, want exit 111 without running the subprogram", name, err, out)
		}
	}
	// A line without an account (for SMTP AUTH, where qmail-chkpw runs as qmaild)
	// gives no user to become: as root, the subprogram is not run as root instead.
	os.Remove(file)
	os.WriteFile(file, []byte("carol:"+hash(t, "pw")+"\n"), 0o600)
	out, err := run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != chkpw.ExitTemporary || strings.Contains(out, "ran as") {
		t.Errorf("line without an account, as root: %v %q, want exit 111 without running the subprogram", err, out)
	}
}

// TestUpdateNewFileOwner: a new passwords file made for a group (qmaild's, so that
// qmail-smtpd can read it) is readable by that group and writable only by its owner.
func TestUpdateNewFileOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	file := filepath.Join(t.TempDir(), "passwords")
	add := func(es []chkpw.Entry) ([]chkpw.Entry, error) {
		return chkpw.Set(es, chkpw.Entry{User: "alice", Hash: hash(t, "pw")}, true), nil
	}
	if err := chkpw.Update(file, 0, 65533, add); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 0 || st.Gid != 65533 || fi.Mode().Perm() != 0o640 {
		t.Errorf("new file %d:%d %v, want 0:65533 0640", st.Uid, st.Gid, fi.Mode().Perm())
	}
}
