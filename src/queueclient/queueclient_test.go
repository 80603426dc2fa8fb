package queueclient_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/notqmail/notqmail/src/queueclient"
	"github.com/notqmail/notqmail/src/sandbox"
)

// script writes an executable sh script into dir and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSubmitToRealQmailQueue(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	cf := queueclient.Config{Home: h.Dir, Env: h.Env()}
	c, err := cf.Open()
	if err != nil {
		t.Fatal(err)
	}
	pid := c.PID()
	c.Write([]byte("Subject: one\n\n"))
	c.Write([]byte("body\n"))
	c.From("bob@example.org")
	c.To("alice@sandbox.example")
	c.To("carol@example.net")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	q := h.Queue()
	todo, _ := os.ReadDir(filepath.Join(q.Dir, "todo"))
	if len(todo) != 1 {
		t.Fatalf("todo has %d entries", len(todo))
	}
	id, _ := strconv.ParseUint(todo[0].Name(), 10, 64)
	env, _ := os.ReadFile(q.Path("todo", id))
	want := "u" + strconv.Itoa(h.UID) + "\x00p" + strconv.Itoa(pid) + "\x00Fbob@example.org\x00Talice@sandbox.example\x00Tcarol@example.net\x00"
	if string(env) != want {
		t.Errorf("envelope %q, want %q", env, want)
	}
	mess, _ := os.ReadFile(q.Path("mess", id))
	if !strings.HasSuffix(string(mess), "-0000\nSubject: one\n\nbody\n") {
		t.Errorf("message %q", mess)
	}

	// Fail: nothing is queued, and Close says so.
	c, err = cf.Open()
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("partial"))
	c.Fail()
	c.From("bob@example.org")
	c.To("alice@sandbox.example")
	err = c.Close()
	var qe *queueclient.Error
	if !errors.As(err, &qe) || qe.Permanent || qe.Text != "qq read error (#4.3.0)" {
		t.Errorf("after Fail: %v", err)
	}
	if todo, _ := os.ReadDir(filepath.Join(q.Dir, "todo")); len(todo) != 1 {
		t.Errorf("todo has %d entries after a failed message", len(todo))
	}
	// intd keeps only the queued message's entry (qmail-send removes it with todo's).
	if ents, _ := os.ReadDir(filepath.Join(q.Dir, "intd")); len(ents) != 1 || ents[0].Name() != todo[0].Name() {
		t.Errorf("intd not cleaned: %v", ents)
	}
	if ents, _ := os.ReadDir(filepath.Join(q.Dir, "pid")); len(ents) != 0 {
		t.Errorf("pid not cleaned: %v", ents)
	}

	// Submit with an envelope address qmail-queue refuses: permanent.
	err = cf.Submit(strings.NewReader("x\n"), "bob@example.org", []string{strings.Repeat("a", 1003)})
	if !queueclient.IsPermanent(err) || err.Error() != "envelope address too long for qq (#5.1.3)" {
		t.Errorf("long address: %v", err)
	}
	// A read error on the message abandons it.
	err = cf.Submit(iotest.TimeoutReader(strings.NewReader(strings.Repeat("y", 100000))), "b@example.org", []string{"a@sandbox.example"})
	if err == nil || !strings.Contains(err.Error(), "reading message") {
		t.Errorf("read error: %v", err)
	}
	if todo, _ := os.ReadDir(filepath.Join(q.Dir, "todo")); len(todo) != 1 {
		t.Errorf("todo has %d entries after failed submissions", len(todo))
	}
}

// A QMAILQUEUE replacement gets the message on fd 0, the envelope on fd 1 and runs in
// QMAILHOME.
func TestReplacementSeesQmailInterface(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0755)
	prog := script(t, dir, "qq", "pwd > "+out+"/cwd; cat > "+out+"/msg; cat <&1 > "+out+"/env; exit 0\n")
	t.Setenv("QMAILQUEUE", prog)
	err := queueclient.Config{Home: dir}.Submit(strings.NewReader("hello\n"), "s@x", []string{"r1@y", "r2@z"})
	if err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{"cwd": dir + "\n", "msg": "hello\n", "env": "Fs@x\x00Tr1@y\x00Tr2@z\x00\x00"} {
		if b, _ := os.ReadFile(filepath.Join(out, f)); string(b) != want {
			t.Errorf("%s = %q, want %q", f, b, want)
		}
	}
	// A relative QMAILQUEUE is found relative to QMAILHOME, not PATH.
	t.Setenv("QMAILQUEUE", "qq")
	if err := (queueclient.Config{Home: dir}).Submit(strings.NewReader("again\n"), "s@x", []string{"r@y"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "msg")); string(b) != "again\n" {
		t.Errorf("relative QMAILQUEUE: msg = %q", b)
	}
}

func TestExitCodeTable(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		code int
		perm bool
		text string
	}{
		{11, true, "envelope address too long for qq (#5.1.3)"},
		{115, true, "envelope address too long for qq (#5.1.3)"},
		{31, true, "mail server permanently rejected message (#5.3.0)"},
		{25, true, "qq permanent problem (#5.3.0)"},
		{40, true, "qq permanent problem (#5.3.0)"},
		{41, false, "qq temporary problem (#4.3.0)"},
		{51, false, "qq out of memory (#4.3.0)"},
		{52, false, "qq timeout (#4.3.0)"},
		{53, false, "qq write error or disk full (#4.3.0)"},
		{54, false, "qq read error (#4.3.0)"},
		{55, false, "qq unable to read configuration (#4.3.0)"},
		{56, false, "qq trouble making network connection (#4.3.0)"},
		{61, false, "qq trouble in home directory (#4.3.0)"},
		{62, false, "qq trouble creating files in queue (#4.3.0)"},
		{66, false, "qq trouble creating files in queue (#4.3.0)"},
		{71, false, "mail server temporarily rejected message (#4.3.0)"},
		{72, false, "connection to mail server timed out (#4.4.1)"},
		{73, false, "connection to mail server rejected (#4.4.1)"},
		{74, false, "communication with mail server failed (#4.4.2)"},
		{81, false, "qq internal bug (#4.3.0)"},
		{91, false, "qq internal bug (#4.3.0)"},
		{82, false, "qq temporary problem (#4.3.0)"}, // 82 without a message
		{100, false, "qq temporary problem (#4.3.0)"},
		{1, false, "qq temporary problem (#4.3.0)"},
	}
	for _, c := range cases {
		prog := script(t, dir, "qq"+strconv.Itoa(c.code), "cat >/dev/null; cat <&1 >/dev/null; exit "+strconv.Itoa(c.code)+"\n")
		err := queueclient.Config{Home: dir, Program: prog}.Submit(strings.NewReader("m\n"), "s@x", []string{"r@y"})
		var qe *queueclient.Error
		if !errors.As(err, &qe) || qe.Code != c.code || qe.Permanent != c.perm || qe.Text != c.text {
			t.Errorf("exit %d: %#v, want perm=%v %q", c.code, err, c.perm, c.text)
		}
	}
	if s := queueclient.Text(53, "").Status(); s != "Zqq write error or disk full (#4.3.0)" {
		t.Errorf("Status = %q", s)
	}
	if s := queueclient.Text(31, "").Status(); s != "Dmail server permanently rejected message (#5.3.0)" {
		t.Errorf("Status = %q", s)
	}
}

func TestCustomErrorOnFD6(t *testing.T) {
	dir := t.TempDir()
	run := func(body string) error {
		prog := script(t, dir, "qq", "cat >/dev/null; cat <&1 >/dev/null; "+body)
		return queueclient.Config{Home: dir, Program: prog}.Submit(strings.NewReader("m\n"), "s@x", []string{"r@y"})
	}
	err := run("printf 'Dspam score too high (#5.7.1)' >&6; exit 82\n")
	var qe *queueclient.Error
	if !errors.As(err, &qe) || !qe.Permanent || qe.Text != "spam score too high (#5.7.1)" || qe.Code != 82 {
		t.Errorf("D message: %#v", err)
	}
	err = run("printf 'Zgreylisted, try later\\r\\n250 injected\\n' >&6; exit 82\n")
	if !errors.As(err, &qe) || qe.Permanent || qe.Text != "greylisted, try later" {
		t.Errorf("Z message: %#v", err)
	}
	err = run("printf 'no prefix' >&6; exit 82\n")
	if !errors.As(err, &qe) || qe.Permanent || qe.Text != "qq temporary problem (#4.3.0)" {
		t.Errorf("bad message: %#v", err)
	}
	// Much more than a pipe holds: read, cut, and no deadlock.
	err = run("head -c 200000 /dev/zero | tr '\\0' D >&6; exit 82\n")
	if !errors.As(err, &qe) || !qe.Permanent || len(qe.Text) != queueclient.MaxCustomError-1 {
		t.Errorf("huge message: perm=%v len=%d", qe != nil && qe.Permanent, len(qe.Text))
	}
	// A message on fd 6 does not matter unless the exit code is 82.
	if err := run("printf 'Dignored' >&6; exit 0\n"); err != nil {
		t.Errorf("exit 0 with fd 6 text: %v", err)
	}
	// A background child keeping fd 6 open must not make Close wait for it.
	pidfile := filepath.Join(dir, "bgpid")
	err = run("sleep 600 >/dev/null 2>&1 </dev/null & echo $! > " + pidfile + "; printf 'Zbusy' >&6; exit 82\n")
	if b, rerr := os.ReadFile(pidfile); rerr == nil {
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
			if p, ferr := os.FindProcess(pid); ferr == nil {
				p.Kill()
			}
		}
	}
	if !errors.As(err, &qe) || qe.Text != "busy" {
		t.Errorf("with lingering fd 6: %#v", err)
	}
}

func TestOpenFailures(t *testing.T) {
	dir := t.TempDir()
	_, err := queueclient.Config{Home: filepath.Join(dir, "missing"), Program: "/bin/true"}.Open()
	var qe *queueclient.Error
	if !errors.As(err, &qe) || qe.Code != 61 || qe.Text != "qq trouble in home directory (#4.3.0)" {
		t.Errorf("missing home: %#v", err)
	}
	_, err = queueclient.Config{Home: dir}.Open() // no bin/qmail-queue
	if !errors.As(err, &qe) || qe.Code != 120 || qe.Text != "unable to exec qq (#4.3.0)" {
		t.Errorf("missing program: %#v", err)
	}
	// A crash is reported as one.
	prog := script(t, dir, "qq", "kill -9 $$\n")
	err = queueclient.Config{Home: dir, Program: prog}.Submit(strings.NewReader("m\n"), "s@x", nil)
	if !errors.As(err, &qe) || qe.Text != "qq crashed (#4.3.0)" {
		t.Errorf("crash: %#v", err)
	}
	// Misuse never queues: To before From, an address with a NUL.
	ok := script(t, dir, "ok", "cat >/dev/null; cat <&1 > "+filepath.Join(dir, "env")+"; exit 0\n")
	c, err := queueclient.Config{Home: dir, Program: ok}.Open()
	if err != nil {
		t.Fatal(err)
	}
	c.To("early@x")
	c.From("s@x")
	if err := c.Close(); err == nil {
		t.Error("To before From accepted")
	}
	c, _ = queueclient.Config{Home: dir, Program: ok}.Open()
	c.From("s@x")
	c.To("a@x\x00Tevil@y")
	if err := c.Close(); err == nil {
		t.Error("NUL in address accepted")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "env")); strings.Contains(string(b), "evil") {
		t.Errorf("injected recipient reached the queue program: %q", b)
	}
}

// The package-level Open and Submit take QMAILHOME and QMAILQUEUE from the environment.
func TestDefaultsFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "bin"), 0755)
	out := filepath.Join(dir, "out")
	script(t, filepath.Join(dir, "bin"), "qmail-queue", "pwd > "+out+"; cat >/dev/null; cat <&1 >/dev/null\n")
	t.Setenv("QMAILHOME", dir)
	t.Setenv("QMAILQUEUE", "")
	if err := queueclient.Submit(strings.NewReader("m\n"), "s@x", []string{"r@y"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != dir+"\n" {
		t.Errorf("bin/qmail-queue ran in %q, want %q", b, dir)
	}
	refuse := script(t, dir, "refuse", "cat >/dev/null; cat <&1 >/dev/null; exit 31\n")
	t.Setenv("QMAILQUEUE", refuse)
	c, err := queueclient.Open()
	if err != nil {
		t.Fatal(err)
	}
	if c.PID() <= 0 {
		t.Errorf("PID %d", c.PID())
	}
	c.Write([]byte("m\n"))
	c.From("s@x")
	if _, err := c.Write([]byte("late")); err == nil {
		t.Error("Write after From accepted")
	}
	// The refusing program's exit 31 comes through as a permanent error.
	if err := c.Close(); !queueclient.IsPermanent(err) {
		t.Errorf("Close = %v, want the permanent refusal", err)
	}
	if err := c.Close(); err == nil {
		t.Error("second Close succeeded")
	}
}
