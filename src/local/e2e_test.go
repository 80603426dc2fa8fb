package local_test

// End-to-end tests: the real notqmail binary, run as qmail-local (and its helpers)
// on a real home directory, as an unprivileged user when the tests run as root.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var binDir string // holds the notqmail binary and a link per program name

var programs = []string{"qmail-local", "qmail-getpw", "forward", "condredirect", "bouncesaying",
	"except", "preline", "maildir2mbox"}

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		code = 1
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "notqmail-local-e2e")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	// Readable by the unprivileged user the deliveries run as.
	if err := os.Chmod(dir, 0o755); err != nil {
		return 0, err
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	out, err := exec.Command(gobin, "build", "-buildvcs=false", "-o", filepath.Join(dir, "notqmail"),
		"github.com/notqmail/notqmail/src/cmd/notqmail").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("building notqmail: %v\n%s", err, out)
	}
	for _, p := range programs {
		if err := os.Symlink("notqmail", filepath.Join(dir, p)); err != nil {
			return 0, err
		}
	}
	binDir = dir
	return m.Run(), nil
}

// world is a QMAILHOME with a recording QMAILQUEUE and one user's home directory.
type world struct {
	t      *testing.T
	base   string // 0755, holds everything
	home   string // the user's home
	record string // where the QMAILQUEUE script writes what it was given
	uid    int    // the uid deliveries run as
	gid    int
	cred   *syscall.Credential
}

func newWorld(t *testing.T) *world {
	t.Helper()
	base, err := os.MkdirTemp("", "e2e-world")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	w := &world{t: t, base: base, home: filepath.Join(base, "home", "joe"), record: filepath.Join(base, "record"),
		uid: os.Getuid(), gid: os.Getgid()}
	if w.uid == 0 {
		// Root would bypass every permission check: deliver as nobody instead.
		w.uid, w.gid = 65534, 65534
		w.cred = &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: false}
	}
	for _, d := range []string{w.home, w.record} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(base, "home"), 0o755)
	os.Chmod(w.record, 0o777)
	w.write(filepath.Join(base, "qq"), "#!/bin/sh\n"+
		"cat > \"$RECORD/msg.$$\" || exit 54\n"+
		"cat <&1 > \"$RECORD/env.$$\" || exit 54\n"+
		"exit ${QQ_EXIT:-0}\n", 0o755)
	return w
}

// write creates a file (parents too) owned by the delivery user.
func (w *world) write(path, body string, mode os.FileMode) {
	w.t.Helper()
	if !filepath.IsAbs(path) {
		path = filepath.Join(w.home, path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		w.t.Fatal(err)
	}
	w.chown(path)
}

func (w *world) chown(path string) {
	if os.Getuid() == 0 {
		if err := os.Lchown(path, w.uid, w.gid); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *world) maildir(path string) string {
	w.t.Helper()
	if !filepath.IsAbs(path) {
		path = filepath.Join(w.home, path)
	}
	for _, sub := range []string{"", "tmp", "new", "cur"} {
		p := filepath.Join(path, sub)
		if err := os.MkdirAll(p, 0o700); err != nil {
			w.t.Fatal(err)
		}
		w.chown(p)
	}
	return path
}

// ready gives the home to the delivery user with qmail's required modes.
func (w *world) ready(mode os.FileMode) {
	w.t.Helper()
	w.chown(w.home)
	if err := os.Chmod(w.home, mode); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) env(extra ...string) []string {
	return append([]string{
		"PATH=" + binDir + ":/usr/bin:/bin",
		"QMAILHOME=" + w.base,
		"QMAILQUEUE=" + filepath.Join(w.base, "qq"),
		"RECORD=" + w.record,
	}, extra...)
}

// run runs a program from binDir as the delivery user with msg on a seekable stdin.
func (w *world) run(msg string, env []string, name string, args ...string) (int, string) {
	w.t.Helper()
	f, err := os.CreateTemp("", "e2e-msg")
	if err != nil {
		w.t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	f.WriteString(msg)
	f.Seek(0, 0)
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Stdin = f
	cmd.Env = env
	cmd.Dir = "/"
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if w.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: w.cred}
	}
	err = cmd.Run()
	if cmd.ProcessState == nil {
		w.t.Fatalf("running %s: %v", name, err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// local runs qmail-local for joe<dash><ext>@example.org.
func (w *world) local(msg, dash, ext string, flags ...string) (int, string) {
	w.t.Helper()
	loc := "joe" + dash + ext
	args := append(flags, "--", "joe", w.home, loc, dash, ext, "example.org", "sender@example.net", "./Maildir/")
	return w.run(msg, w.env(), "qmail-local", args...)
}

func (w *world) expect(gotCode int, gotOut string, code int, out string) {
	w.t.Helper()
	if gotCode != code || gotOut != out {
		w.t.Fatalf("exit %d, output %q; want %d, %q", gotCode, gotOut, code, out)
	}
}

// queued returns what the QMAILQUEUE script recorded: messages and envelopes.
func (w *world) queued() (msgs, envs []string) {
	w.t.Helper()
	ents, _ := os.ReadDir(w.record)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(w.record, e.Name()))
		if err != nil {
			w.t.Fatal(err)
		}
		if strings.HasPrefix(e.Name(), "msg.") {
			msgs = append(msgs, string(b))
		} else {
			envs = append(envs, string(b))
		}
	}
	return msgs, envs
}

func newFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, "new", e.Name()))
		out = append(out, string(b))
	}
	return out
}

const msg = "From: a@example.net\nTo: joe@example.org\nSubject: hello\n\nFrom here on\nbody\n"

func TestE2EDefaultDeliveryMaildir(t *testing.T) {
	w := newWorld(t)
	md := w.maildir("Maildir")
	w.ready(0o755)
	code, out := w.local(msg, "", "")
	w.expect(code, out, 0, "did 1+0+0\n")
	got := newFiles(t, md)
	want := "Return-Path: <sender@example.net>\nDelivered-To: joe@example.org\n" + msg
	if len(got) != 1 || got[0] != want {
		t.Fatalf("maildir: %q", got)
	}
	if tmp, _ := os.ReadDir(filepath.Join(md, "tmp")); len(tmp) != 0 {
		t.Fatal("tmp/ not empty")
	}
}

func TestE2EMboxProgramAndOrder(t *testing.T) {
	w := newWorld(t)
	w.write(".qmail", "# all three\n./Mailbox\n|cat > prog.out; echo prog ran\n./Maildir/\n", 0o644)
	md := w.maildir("Maildir")
	w.ready(0o755)
	code, out := w.local(msg, "", "")
	w.expect(code, out, 0, "prog ran\ndid 2+0+1\n")
	mb, err := os.ReadFile(filepath.Join(w.home, "Mailbox"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^From sender@example.net [A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d \d{4}\n` +
		`Return-Path: <sender@example.net>\nDelivered-To: joe@example.org\n` +
		regexp.QuoteMeta(strings.Replace(msg, "\nFrom here", "\n>From here", 1)) + `\n$`).Match(mb) {
		t.Fatalf("mbox: %q", mb)
	}
	if fi, _ := os.Stat(filepath.Join(w.home, "Mailbox")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mbox mode %v", fi.Mode())
	}
	if po, _ := os.ReadFile(filepath.Join(w.home, "prog.out")); string(po) != msg {
		t.Fatalf("program got %q", po)
	}
	if got := newFiles(t, md); len(got) != 1 {
		t.Fatalf("maildir has %d messages", len(got))
	}
}

func TestE2EForward(t *testing.T) {
	w := newWorld(t)
	w.write(".qmail-fwd", "&a@example.com\nb@example.com\n", 0o644)
	w.write(".qmail-fwd-owner", "owner@example.com\n", 0o644)
	w.ready(0o755)
	code, out := w.local(msg, "-", "fwd")
	if code != 0 || !regexp.MustCompile(`^did 0\+2\+0\nqp \d+\n$`).MatchString(out) {
		t.Fatalf("exit %d, output %q", code, out)
	}
	msgs, envs := w.queued()
	if len(msgs) != 1 || msgs[0] != "Delivered-To: joe-fwd@example.org\n"+msg {
		t.Fatalf("queued messages %q", msgs)
	}
	if len(envs) != 1 || envs[0] != "Fjoe-fwd-owner@example.org\x00Ta@example.com\x00Tb@example.com\x00\x00" {
		t.Fatalf("queued envelopes %q", envs)
	}
}

func TestE2EForwardRefused(t *testing.T) {
	w := newWorld(t)
	w.write(".qmail-fwd", "a@example.com\n", 0o644)
	w.ready(0o755)
	code, out := w.run(msg, w.env("QQ_EXIT=31"), "qmail-local", "--", "joe", w.home, "joe-fwd", "-", "fwd",
		"example.org", "s@example.net", "./Maildir/")
	w.expect(code, out, 100, "Unable to forward message: mail server permanently rejected message (#5.3.0).\n")
	code, out = w.run(msg, w.env("QQ_EXIT=53"), "qmail-local", "--", "joe", w.home, "joe-fwd", "-", "fwd",
		"example.org", "s@example.net", "./Maildir/")
	w.expect(code, out, 111, "Unable to forward message: qq write error or disk full (#4.3.0).\n")
}

func TestE2EExtensionsAndDefault(t *testing.T) {
	w := newWorld(t)
	w.write(".qmail-list", "|echo list\n", 0o644)
	w.write(".qmail-list-default", "|echo list-default $DEFAULT $EXT2\n", 0o644)
	w.write(".qmail-default", "|echo default $DEFAULT\n", 0o644)
	w.ready(0o755)
	for ext, want := range map[string]string{
		"list":          "list",
		"LIST":          "list",
		"list-Sub.Join": "list-default Sub.Join Sub.Join",
		"other":         "default other",
	} {
		code, out := w.local(msg, "-", ext)
		w.expect(code, out, 0, want+"\ndid 0+0+1\n")
	}
	os.Remove(filepath.Join(w.home, ".qmail-default"))
	code, out := w.local(msg, "-", "other")
	w.expect(code, out, 100, "Sorry, no mailbox here by that name. (#5.1.1)\n")
}

func TestE2ELoop(t *testing.T) {
	w := newWorld(t)
	w.maildir("Maildir")
	w.ready(0o755)
	code, out := w.local("Delivered-To: joe@example.org\n"+msg, "", "")
	w.expect(code, out, 100, "This message is looping: it already has my Delivered-To line. (#5.4.6)\n")
}

func TestE2EPermissionRefusals(t *testing.T) {
	w := newWorld(t)
	w.maildir("Maildir")
	w.write(".qmail-secret", "./Maildir/\n", 0o000)
	if os.Getuid() == 0 {
		// Owned by someone else, so the unprivileged delivery user cannot read it.
		os.Chown(filepath.Join(w.home, ".qmail-secret"), 0, 0)
	}
	w.write(".qmail-open", "./Maildir/\n", 0o666)
	w.write(".qmail-x", "./Maildir/\n", 0o755)
	w.ready(0o755)
	code, out := w.local(msg, "-", "secret")
	w.expect(code, out, 111, "Unable to open .qmail-secret: permission denied. (#4.3.0)\n")
	code, out = w.local(msg, "-", "open")
	w.expect(code, out, 111, "Uh-oh: .qmail file is writable. (#4.7.0)\n")
	code, out = w.local(msg, "-", "x")
	w.expect(code, out, 111, "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)\n")

	os.Chmod(w.home, 0o757)
	code, out = w.local(msg, "", "")
	w.expect(code, out, 111, "Uh-oh: home directory is writable. (#4.7.0)\n")
	os.Chmod(w.home, os.ModeSticky|0o755)
	code, out = w.local(msg, "", "")
	w.expect(code, out, 111, "Home directory is sticky: user is editing his .qmail file. (#4.2.1)\n")
	code, out = w.local(msg, "", "", "-n")
	w.expect(code, out, 0, "Warning: home directory is sticky.\nmaildir ./Maildir/\ndid 1+0+0\n")
	os.Chmod(w.home, 0o600)
	code, out = w.local(msg, "", "")
	w.expect(code, out, 111, "Unable to switch to "+w.home+": permission denied. (#4.3.0)\n")
}

func TestE2EUnwritableMaildirIsTemporary(t *testing.T) {
	w := newWorld(t)
	md := w.maildir("Maildir")
	os.Chmod(filepath.Join(md, "tmp"), 0o500)
	w.ready(0o755)
	code, out := w.local(msg, "", "")
	w.expect(code, out, 111, "Temporary error on maildir delivery: permission denied. (#4.3.0)\n")
	if got := newFiles(t, md); len(got) != 0 {
		t.Fatal("delivered anyway")
	}
}

func TestE2EDiskFullIsTemporary(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounting a tiny tmpfs needs root")
	}
	w := newWorld(t)
	mnt := filepath.Join(w.base, "full")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	md := w.maildir(filepath.Join(mnt, "Maildir"))
	w.write(filepath.Join(mnt, "Mailbox"), "From old Thu Jan 01 00:00:00 1970\nold\n\n", 0o600)
	w.write(".qmail-md", md+"/\n", 0o644)
	w.write(".qmail-mb", filepath.Join(mnt, "Mailbox")+"\n", 0o644)
	w.ready(0o755)
	big := msg + strings.Repeat("0123456789abcdef\n", 20000)

	code, out := w.local(big, "-", "md")
	w.expect(code, out, 111, "Temporary error on maildir delivery: no space left on device. (#4.3.0)\n")
	if tmp, _ := os.ReadDir(filepath.Join(md, "tmp")); len(tmp) != 0 {
		t.Fatal("tmp/ not cleaned after ENOSPC")
	}
	code, out = w.local(big, "-", "mb")
	w.expect(code, out, 111, "Unable to write "+filepath.Join(mnt, "Mailbox")+": no space left on device. (#4.3.0)\n")
	if b, _ := os.ReadFile(filepath.Join(mnt, "Mailbox")); string(b) != "From old Thu Jan 01 00:00:00 1970\nold\n\n" {
		t.Fatalf("mbox not truncated back: %d bytes", len(b))
	}
	// Room for a small message: both work again.
	code, out = w.local(msg, "-", "md")
	w.expect(code, out, 0, "did 1+0+0\n")
}

func TestE2EDryRunAndUsage(t *testing.T) {
	w := newWorld(t)
	w.write(".qmail", "./Mailbox\n|prog\nfwd@example.com\n", 0o644)
	w.ready(0o755)
	code, out := w.local(msg, "", "", "-n")
	w.expect(code, out, 0, "mbox ./Mailbox\nprogram prog\nforward fwd@example.com\ndid 1+1+1\n")
	code, out = w.run(msg, w.env(), "qmail-local", "joe")
	w.expect(code, out, 100, "qmail-local: usage: qmail-local [ -nN ] user homedir local dash ext domain sender aliasempty\n")
}

func TestE2EHelpers(t *testing.T) {
	w := newWorld(t)
	w.write(".qmail-fw", "|forward x@example.com y@example.com\n", 0o644)
	w.write(".qmail-cr", "|condredirect new@example.com true\n|echo not reached\n", 0o644)
	w.write(".qmail-nocr", "|condredirect new@example.com false\n|echo reached\n", 0o644)
	w.write(".qmail-bs", "|bouncesaying 'Go away.' true\n", 0o644)
	w.write(".qmail-nobs", "|bouncesaying 'Go away.' false\n|echo stayed\n", 0o644)
	w.write(".qmail-tempbs", "|bouncesaying 'Go away.' sh -c 'exit 111'\n", 0o644)
	w.write(".qmail-ex", "|except false\n|except sh -c 'echo refused; exit 0'\n", 0o644)
	w.write(".qmail-pl", "|preline -r cat > pl.out\n", 0o644)
	w.ready(0o755)
	cases := []struct {
		ext  string
		code int
		out  string
	}{
		{"fw", 0, `^forward: qp \d+\ndid 0\+0\+1\n$`},
		{"cr", 0, `^condredirect: qp \d+\ndid 0\+0\+1\n$`},
		{"nocr", 0, `^reached\ndid 0\+0\+2\n$`},
		{"bs", 100, `^Go away\.\n$`},
		{"nobs", 0, `^stayed\ndid 0\+0\+2\n$`},
		{"tempbs", 111, `^bouncesaying: fatal: temporary child error\n$`},
		{"ex", 100, `^refused\n$`},
		{"pl", 0, `^did 0\+0\+1\n$`},
	}
	for _, c := range cases {
		code, out := w.local(msg, "-", c.ext)
		if code != c.code || !regexp.MustCompile(c.out).MatchString(out) {
			t.Errorf("%s: exit %d, output %q; want %d, %s", c.ext, code, out, c.code, c.out)
		}
	}
	msgs, envs := w.queued()
	want := map[string]bool{
		"Fsender@example.net\x00Tx@example.com\x00Ty@example.com\x00\x00": true,
		"Fsender@example.net\x00Tnew@example.com\x00\x00":                 true,
	}
	if len(envs) != 2 || !want[envs[0]] || !want[envs[1]] || envs[0] == envs[1] {
		t.Fatalf("envelopes %q", envs)
	}
	for _, m := range msgs {
		if !strings.HasPrefix(m, "Delivered-To: joe-") || !strings.HasSuffix(m, msg) {
			t.Fatalf("forwarded message %q", m)
		}
	}
	pl, _ := os.ReadFile(filepath.Join(w.home, "pl.out"))
	if !regexp.MustCompile(`^From sender@example.net .* \d{4}\nDelivered-To: joe-pl@example.org\n` + regexp.QuoteMeta(msg) + `$`).Match(pl) {
		t.Fatalf("preline output %q", pl)
	}
}

func TestE2EHelperUsage(t *testing.T) {
	w := newWorld(t)
	for name, want := range map[string]string{
		"forward":      "forward: usage: forward address [ address ... ]\n",
		"condredirect": "condredirect: usage: condredirect newaddress program [ arg ... ]\n",
		"bouncesaying": "bouncesaying: usage: bouncesaying error [ program [ arg ... ] ]\n",
		"except":       "except: usage: except program [ arg ... ]\n",
		"preline":      "preline: usage: preline cmd [ arg ... ]\n",
	} {
		code, out := w.run(msg, w.env(), name)
		w.expect(code, out, 100, want)
	}
	code, out := w.run(msg, w.env("DTLINE=x\n"), "forward", "a@b")
	w.expect(code, out, 100, "forward: fatal: NEWSENDER not set\n")
	code, out = w.run(msg, w.env(), "maildir2mbox")
	w.expect(code, out, 111, "maildir2mbox: fatal: MAIL not set\n")
}

func TestE2EMaildir2mbox(t *testing.T) {
	w := newWorld(t)
	md := w.maildir("Maildir")
	w.write(filepath.Join(md, "new", "1"), "Return-Path: <s@x>\nSubject: a\n\nFrom x\n", 0o600)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(md, "new", "1"), old, old)
	w.ready(0o755)
	code, out := w.run("", w.env("MAILDIR="+md, "MAIL="+filepath.Join(w.home, "mbox"), "MAILTMP="+filepath.Join(w.home, "mbox.tmp")), "maildir2mbox")
	w.expect(code, out, 0, "")
	b, _ := os.ReadFile(filepath.Join(w.home, "mbox"))
	if !regexp.MustCompile(`^From s@x .* \d{4}\nReturn-Path: <s@x>\nSubject: a\n\n>From x\n\n$`).Match(b) {
		t.Fatalf("mbox %q", b)
	}
	if n := newFiles(t, md); len(n) != 0 {
		t.Fatal("message left in maildir")
	}
}

func TestE2EGetpwSandbox(t *testing.T) {
	w := newWorld(t)
	// The world's base is the sandbox: owned by the delivery user (not root).
	w.chown(w.base)
	code, out := w.run("", w.env(), "qmail-getpw", "Root-Ext")
	want := "alias\x00" + strconv.Itoa(w.uid) + "\x00" + strconv.Itoa(w.gid) + "\x00" + filepath.Join(w.base, "alias") + "\x00-\x00Root-Ext\x00"
	w.expect(code, out, 0, want)
}

func TestE2EGetpwSystem(t *testing.T) {
	w := newWorld(t)
	env := []string{"PATH=/usr/bin:/bin"} // no QMAILHOME: the password database
	code, out := w.run("", env, "qmail-getpw", "root")
	if a, err := user.Lookup("alias"); err == nil {
		want := "alias\x00" + a.Uid + "\x00" + a.Gid + "\x00" + a.HomeDir + "\x00-\x00root\x00"
		w.expect(code, out, 0, want)
	} else if code != 116 {
		t.Fatalf("no alias user: exit %d, output %q; want 116", code, out)
	}
	code, _ = w.run("", env, "qmail-getpw")
	if code != 100 {
		t.Fatalf("usage: exit %d", code)
	}
}

// Programs must get SIGPIPE's default action even though qmail-local itself survives
// a vanished reader: a pipeline such as "yes | head -1" must end.
func TestE2EProgramsGetDefaultSIGPIPE(t *testing.T) {
	w := newWorld(t)
	w.write(".qmail", "|grep SigIgn /proc/self/status\n|yes | head -1\n", 0o644)
	w.ready(0o755)
	code, out := w.local(msg, "", "")
	m := regexp.MustCompile(`^SigIgn:\s+([0-9a-f]+)\ny\ndid 0\+0\+2\n$`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("exit %d, output %q", code, out)
	}
	mask, err := strconv.ParseUint(m[1], 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	if mask&(1<<(uint(syscall.SIGPIPE)-1)) != 0 {
		t.Fatalf("SIGPIPE ignored in programs (SigIgn %s)", m[1])
	}
}

func fileOwner(path string) (int, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
