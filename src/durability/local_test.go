package durability

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/sandbox"
)

// localMessage is the message the qmail-local tests deliver.
const localMessage = "From: bob@far.example\nSubject: durability\n\nthe body\n"

// runLocal runs the home's bin/qmail-local under strace for alice with the given
// default delivery (the home has no .qmail file), the message on a seekable standard
// input, and returns its exit code and report.
func runLocal(t *testing.T, h *sandbox.Home, trace string, extra []string, delivery string) (int, string) {
	t.Helper()
	mf := filepath.Join(t.TempDir(), "msg")
	if err := os.WriteFile(mf, []byte(localMessage), 0644); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(mf)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	argv := straceArgs(t, trace, extra, filepath.Join(h.Bin, "qmail-local"),
		"--", "alice", h.UserHome("alice"), "alice", "", "", h.Domain, "bob@far.example", delivery)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = h.Env(), h.UserHome("alice")
	var out bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, &out, &out
	return exitCode(t, cmd.Run()), out.String()
}

// successWrite returns the write of qmail-local's success report ("did ...") to its
// output (standard output, or the pipe a worker got for it), or nil.
func successWrite(ev []Event) *Event {
	return find(ev, 0, func(e Event) bool {
		return e.Call == "write" && e.OK() && strings.HasPrefix(e.Data(), "did ")
	})
}

// checkMaildirOrder asserts the maildir rule in a trace of one delivery into md,
// reported at the event before: the tmp/ file is fsynced after its last write and
// before it is linked (or renamed) into new/, and new/ is fsynced after that and
// before the report. It returns the path of the file in new/.
func checkMaildirOrder(t *testing.T, tr *traced, cwd, md string, from, before int) string {
	t.Helper()
	ev := tr.events
	newDir := filepath.Join(md, "new")
	pub := find(ev, from, func(e Event) bool {
		p := e.Paths(cwd)
		return IsLink(e) && e.OK() && len(p) == 2 && filepath.Dir(p[1]) == newDir
	})
	if pub == nil || pub.Seq > before {
		t.Fatalf("no link into %s between #%d and #%d:\n%s", newDir, from, before, tr.dump())
	}
	p := pub.Paths(cwd)
	if filepath.Dir(p[0]) != filepath.Join(md, "tmp") {
		t.Errorf("%s was published from %s, not from tmp/", p[1], p[0])
	}
	syncedBetween(t, ev, cwd, p[0], pub.Seq, "maildir tmp/ file")
	dirSyncedBetween(t, ev, newDir, pub.Seq, before, "maildir new/ entry")
	return p[1]
}

// TestLocalMaildirFsyncsBeforeSuccess traces qmail-local delivering to ./Maildir/ and
// checks that the message and its new/ entry are on disk before "did 1+0+0" and exit 0.
func TestLocalMaildirFsyncsBeforeSuccess(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	tr := &traced{t: t, file: filepath.Join(t.TempDir(), "trace")}
	code, out := runLocal(t, h, tr.file, nil, "./Maildir/")
	if code != 0 || !strings.HasPrefix(out, "did 1+0+0") {
		t.Fatalf("qmail-local exited %d: %s", code, out)
	}
	ev := tr.load()
	md := realDir(t, h.Maildir("alice"))
	report, exit := successWrite(ev), exitOf(ev, 0)
	if report == nil || exit == nil || exit.Seq < report.Seq {
		t.Fatalf("no success report followed by exit_group(0):\n%s", tr.dump())
	}
	final := checkMaildirOrder(t, tr, realDir(t, h.UserHome("alice")), md, 0, report.Seq)
	if b, err := os.ReadFile(final); err != nil || !strings.HasSuffix(string(b), localMessage) {
		t.Errorf("%s does not hold the message: %q, %v", final, b, err)
	}
	if t.Failed() {
		t.Logf("trace:\n%s", tr.dump())
	}
}

// TestLocalMboxFsyncsBeforeSuccess traces qmail-local appending to an mbox and checks
// that the mbox is fsynced after the last write of the message and before success.
func TestLocalMboxFsyncsBeforeSuccess(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	mbox := filepath.Join(h.UserHome("alice"), "mbox")
	old := "From someone Thu Jan  1 00:00:00 2026\nSubject: old\n\nold mail\n\n"
	writeOwned(t, h, mbox, old)
	tr := &traced{t: t, file: filepath.Join(t.TempDir(), "trace")}
	code, out := runLocal(t, h, tr.file, nil, "./mbox")
	if code != 0 || !strings.HasPrefix(out, "did 1+0+0") {
		t.Fatalf("qmail-local exited %d: %s", code, out)
	}
	ev := tr.load()
	report, exit := successWrite(ev), exitOf(ev, 0)
	if report == nil || exit == nil || exit.Seq < report.Seq {
		t.Fatalf("no success report followed by exit_group(0):\n%s", tr.dump())
	}
	syncedBetween(t, ev, realDir(t, h.UserHome("alice")), filepath.Join(realDir(t, h.UserHome("alice")), "mbox"), report.Seq, "mbox")
	b, err := os.ReadFile(mbox)
	if err != nil || !strings.HasPrefix(string(b), old) || !strings.Contains(string(b), "\nthe body\n") {
		t.Errorf("mbox after delivery: %q, %v", b, err)
	}
	if t.Failed() {
		t.Logf("trace:\n%s", tr.dump())
	}
}

// writeOwned writes a file in the home that its owner can change.
func writeOwned(t *testing.T, h *sandbox.Home, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, h.UID, h.GID); err != nil {
		t.Fatal(err)
	}
}
