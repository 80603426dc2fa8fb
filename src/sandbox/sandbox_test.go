package sandbox

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/notqmail/notqmail/src/users"
)

func ownerOf(t *testing.T, p string) (int, int) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

func TestNewMakesACompleteHome(t *testing.T) {
	h := New(t, Options{})
	if os.Geteuid() == 0 {
		if h.UID == 0 {
			t.Fatal("root sandbox owned by root")
		}
	} else if h.UID != os.Geteuid() {
		t.Fatalf("owner %d, want caller %d", h.UID, os.Geteuid())
	}
	for _, p := range []string{"", "control/me", "queue", "queue/lock/trigger", "users/assign", "home/alice/Maildir/new", "alias"} {
		if uid, gid := ownerOf(t, filepath.Join(h.Dir, p)); uid != h.UID || gid != h.GID {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, uid, gid, h.UID, h.GID)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(h.Dir, "control/me")); string(b) != "sandbox.example\n" {
		t.Errorf("control/me = %q", b)
	}
	fi, err := os.Stat(filepath.Join(h.Dir, "alias"))
	if err != nil || fi.Mode().Perm() != 0755 || fi.Mode()&fs.ModeSetgid == 0 {
		t.Errorf("alias mode %v, %v; want 02755", fi.Mode(), err)
	}
	assign, _ := os.ReadFile(filepath.Join(h.Dir, "users/assign"))
	want := "=alice:alice:" + strconv.Itoa(h.UID) + ":" + strconv.Itoa(h.GID) + ":" + h.UserHome("alice") + ":::\n"
	if !strings.HasPrefix(string(assign), want) || !strings.HasSuffix(string(assign), "\n.\n") {
		t.Errorf("users/assign = %q", assign)
	}
	a, ok, err := users.Lookup(filepath.Join(h.Dir, "users/cdb"), "alice-ext")
	if err != nil || !ok || a.Home != h.UserHome("alice") || a.UID != h.UID {
		t.Errorf("users/cdb lookup of alice-ext: %+v, %v, %v", a, ok, err)
	}
	if q := h.Queue(); q.Split != 23 {
		t.Errorf("queue split %d", q.Split)
	}
	// Every program the multi-call binary serves has its link.
	out, err := h.Command("notqmail", "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range strings.Fields(string(out)) {
		if l, err := os.Readlink(filepath.Join(h.Bin, n)); err != nil || l != "notqmail" {
			t.Errorf("bin/%s: %q, %v", n, l, err)
		}
	}
	env := strings.Join(h.Env(), "\n")
	if !strings.Contains(env, "QMAILHOME="+h.Dir+"\n") || !strings.Contains(env, "PATH="+h.Bin+":") {
		t.Errorf("Env lacks QMAILHOME or PATH: %s", env)
	}
}

// The sandbox's qmail-queue runs as the owner (dropping from root when the test is
// root) and queues into the sandbox's queue.
func TestQmailQueueRunsInSandbox(t *testing.T) {
	h := New(t, Options{Split: 7})
	cmd := h.Command("qmail-queue")
	cmd.Stdin = strings.NewReader("Subject: hi\n\nbody\n")
	envelope := "Fbob@example.org\x00Talice@sandbox.example\x00\x00"
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = r
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	w.WriteString(envelope)
	w.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("qmail-queue: %v; %s", err, stderr.String())
	}
	q := h.Queue()
	todo, _ := os.ReadDir(filepath.Join(q.Dir, "todo"))
	if len(todo) != 1 {
		t.Fatalf("todo holds %d entries", len(todo))
	}
	id, _ := strconv.ParseUint(todo[0].Name(), 10, 64)
	mess, err := os.ReadFile(q.Path("mess", id))
	if err != nil {
		t.Fatal(err)
	}
	prefix := "Received: (qmail " + strconv.Itoa(cmd.Process.Pid) + " invoked by uid " + strconv.Itoa(h.UID) + "); "
	if !strings.HasPrefix(string(mess), prefix) || !strings.HasSuffix(string(mess), " -0000\nSubject: hi\n\nbody\n") {
		t.Errorf("message = %q, want prefix %q", mess, prefix)
	}
	if uid, _ := ownerOf(t, q.Path("mess", id)); uid != h.UID {
		t.Errorf("message owned by %d, want %d", uid, h.UID)
	}
	env, _ := os.ReadFile(q.Path("todo", id))
	wantEnv := "u" + strconv.Itoa(h.UID) + "\x00p" + strconv.Itoa(cmd.Process.Pid) + "\x00Fbob@example.org\x00Talice@sandbox.example\x00"
	if string(env) != wantEnv {
		t.Errorf("todo = %q, want %q", env, wantEnv)
	}
}

// As root, run the home tests again as an unprivileged user: the non-root path, where
// the caller owns the home.
func TestNewAsUnprivilegedUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("already unprivileged: the other tests cover this path")
	}
	bin, err := builtBinaries()
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0755)
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	copyExe := filepath.Join(dir, "sandbox.test")
	if err := os.WriteFile(copyExe, b, 0755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(copyExe, "-test.run=^(TestNewMakesACompleteHome|TestQmailQueueRunsInSandbox)$", "-test.v")
	cmd.Env = append(os.Environ(), BinEnv+"="+bin)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestNewMakesACompleteHome") ||
		!strings.Contains(string(out), "--- PASS: TestQmailQueueRunsInSandbox") {
		t.Fatalf("as uid 65534: %v\n%s", err, out)
	}
}

func TestSubmit(t *testing.T) {
	h := New(t, Options{})
	if err := h.Submit(strings.NewReader("Subject: s\n\nhi\n"), "bob@example.org", []string{"alice@sandbox.example"}); err != nil {
		t.Fatal(err)
	}
	q := h.Queue()
	ids, err := q.Todo()
	if err != nil || len(ids) != 1 {
		t.Fatalf("todo: %v %v", ids, err)
	}
	env, err := q.ReadEnvelope(ids[0])
	if err != nil || env.Sender != "bob@example.org" || len(env.Recipients) != 1 || env.Recipients[0] != "alice@sandbox.example" {
		t.Errorf("envelope %+v %v", env, err)
	}
}

func TestMessages(t *testing.T) {
	h := New(t, Options{Users: []string{"alice", "bob"}})
	if msgs, err := h.Messages("bob"); err != nil || len(msgs) != 0 {
		t.Fatalf("fresh Maildir: %v %v", msgs, err)
	}
	os.WriteFile(filepath.Join(h.Maildir("bob"), "new", "2.M1P1.host"), []byte("second"), 0600)
	os.WriteFile(filepath.Join(h.Maildir("bob"), "cur", "1.M1P1.host:2,S"), []byte("first"), 0600)
	os.WriteFile(filepath.Join(h.Maildir("alias"), "new", "3.M1P1.host"), []byte("postmaster"), 0600)
	msgs := h.WaitMessages(t, "bob", 2)
	if len(msgs) != 2 || string(msgs[0].Data) != "first" || string(msgs[1].Data) != "second" {
		t.Errorf("messages: %+v", msgs)
	}
	if msgs, _ := h.Messages("alias"); len(msgs) != 1 || string(msgs[0].Data) != "postmaster" {
		t.Errorf("alias messages: %+v", msgs)
	}
	if _, err := h.Messages("alice"); err != nil {
		t.Error(err)
	}
	if _, err := Create(filepath.Join(h.Dir, "home"), Options{}); err == nil {
		t.Error("Create into a non-empty directory succeeded")
	}
	if _, err := Create(t.TempDir(), Options{Users: []string{"../evil"}}); err == nil {
		t.Error("bad user name accepted")
	}
}
