package local

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/queueclient"
)

const testMsg = "From: a@example.net\nSubject: test\n\nFrom the body\nbye\n"

type queued struct {
	msg    string
	sender string
	recips []string
}

type fixture struct {
	t      *testing.T
	home   string
	msg    *os.File
	out    bytes.Buffer
	queued []queued
	qerr   error
	p      Params
	opt    Options
}

func newFixture(t *testing.T, message string) *fixture {
	t.Helper()
	f := &fixture{t: t, home: t.TempDir()}
	os.Chmod(f.home, 0o700)
	m, err := os.CreateTemp(t.TempDir(), "msg")
	if err != nil {
		t.Fatal(err)
	}
	m.WriteString(message)
	t.Cleanup(func() { m.Close() })
	f.msg = m
	f.p = Params{User: "joe", Home: f.home, Local: "joe", Dash: "", Ext: "", Host: "example.org",
		Sender: "sender@example.net", DefaultDelivery: "./Maildir/\n"}
	f.opt = Options{
		Environ: []string{"PATH=/usr/bin:/bin", "DEFAULT=stale", "HOME=/elsewhere"},
		Now:     func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
		Queue: func(msg io.Reader, sender string, recips []string) (int, error) {
			b, err := io.ReadAll(msg)
			if err != nil {
				return 0, err
			}
			if f.qerr != nil {
				return 4242, f.qerr
			}
			f.queued = append(f.queued, queued{string(b), sender, recips})
			return 4242, nil
		},
	}
	return f
}

func (f *fixture) file(name, body string, mode os.FileMode) {
	f.t.Helper()
	p := filepath.Join(f.home, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) maildir(name string) string {
	f.t.Helper()
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(f.home, name, sub), 0o700); err != nil {
			f.t.Fatal(err)
		}
	}
	return filepath.Join(f.home, name)
}

func (f *fixture) run() int {
	f.out.Reset()
	f.opt.Out = &f.out
	return Deliver(f.p, f.msg, f.opt)
}

func (f *fixture) expect(code int, out string) {
	f.t.Helper()
	if got := f.run(); got != code || f.out.String() != out {
		f.t.Fatalf("exit %d, output %q; want %d, %q", got, f.out.String(), code, out)
	}
}

func (f *fixture) ext(local, ext string) {
	f.p.Local, f.p.Dash, f.p.Ext = local, "-", ext
}

// maildirMessages returns the contents of the messages in a maildir's new/.
func maildirMessages(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, "new", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

func TestDefaultDeliveryForBareUser(t *testing.T) {
	f := newFixture(t, testMsg)
	md := f.maildir("Maildir")
	f.expect(0, "did 1+0+0\n")
	got := maildirMessages(t, md)
	want := "Return-Path: <sender@example.net>\nDelivered-To: joe@example.org\n" + testMsg
	if len(got) != 1 || got[0] != want {
		t.Fatalf("maildir holds %q", got)
	}
}

func TestEmptyDotQmailMeansDefaultDelivery(t *testing.T) {
	f := newFixture(t, testMsg)
	f.maildir("Maildir")
	f.file(".qmail", "", 0o644)
	f.expect(0, "did 1+0+0\n")
	// Empty also cancels the execute bit: defaultdelivery is not a forward.
	f.file(".qmail", "", 0o755)
	f.expect(0, "did 1+0+0\n")
}

func TestEmptyDefaultDeliveryIsTemporary(t *testing.T) {
	f := newFixture(t, testMsg)
	f.p.DefaultDelivery = ""
	f.expect(111, "Uh-oh: first line of .qmail file is blank. (#4.2.1)\n")
	// A .qmail of comments only is the documented way to throw mail away.
	f.file(".qmail", "# discard\n", 0o600)
	f.expect(0, "did 0+0+0\n")
}

func TestMboxDelivery(t *testing.T) {
	f := newFixture(t, testMsg)
	f.file(".qmail", "./Mailbox\n", 0o600)
	f.expect(0, "did 1+0+0\n")
	got, _ := os.ReadFile(filepath.Join(f.home, "Mailbox"))
	want := "From sender@example.net Fri Jan 02 03:04:05 2026\n" +
		"Return-Path: <sender@example.net>\nDelivered-To: joe@example.org\n" +
		"From: a@example.net\nSubject: test\n\n>From the body\nbye\n\n"
	if string(got) != want {
		t.Fatalf("mbox = %q\nwant %q", got, want)
	}
}

func TestMissingExtensionBounces(t *testing.T) {
	f := newFixture(t, testMsg)
	f.ext("joe-foo", "foo")
	f.expect(100, "Sorry, no mailbox here by that name. (#5.1.1)\n")
}

func TestExtensionAndDefaultFiles(t *testing.T) {
	f := newFixture(t, testMsg)
	f.file(".qmail-foo-bar", "|echo exact DEFAULT=${DEFAULT-unset}\n", 0o600)
	f.file(".qmail-foo-default", "|echo foo-default DEFAULT=$DEFAULT\n", 0o600)
	f.file(".qmail-default", "|echo default DEFAULT=$DEFAULT\n", 0o600)
	cases := map[string]string{
		"foo-bar":   "exact DEFAULT=unset",
		"Foo-Bar":   "exact DEFAULT=unset",
		"foo-baz":   "foo-default DEFAULT=baz",
		"foo-Baz.Q": "foo-default DEFAULT=Baz.Q",
		"other":     "default DEFAULT=other",
	}
	for ext, want := range cases {
		f.ext("joe-"+ext, ext)
		f.expect(0, want+"\ndid 0+0+1\n")
	}
}

func TestProgramEnvironment(t *testing.T) {
	f := newFixture(t, testMsg)
	vars := "DEFAULT DTLINE EXT EXT2 EXT3 EXT4 HOME HOST HOST2 HOST3 HOST4 LOCAL NEWSENDER PATH RECIPIENT RPLINE SENDER UFLINE USER"
	f.file("show", "#!/bin/sh\nfor v in "+vars+"; do eval \"printf '%s=[%s]\\\\n' $v \\\"\\$$v\\\"\"; done\npwd\n", 0o700)
	f.file(".qmail-list-default", "|./show\n", 0o600)
	f.ext("joe-list-a-b-c", "list-a-b-c")
	f.p.Host = "mail.dept.example.org"
	f.p.Sender = "odd name@example.net"
	if code := f.run(); code != 0 {
		t.Fatalf("exit %d: %s", code, f.out.String())
	}
	want := "DEFAULT=[a-b-c]\n" +
		"DTLINE=[Delivered-To: joe-list-a-b-c@mail.dept.example.org\n]\n" +
		"EXT=[list-a-b-c]\nEXT2=[a-b-c]\nEXT3=[b-c]\nEXT4=[c]\n" +
		"HOME=[" + f.home + "]\n" +
		"HOST=[mail.dept.example.org]\nHOST2=[mail.dept.example]\nHOST3=[mail.dept]\nHOST4=[mail]\n" +
		"LOCAL=[joe-list-a-b-c]\n" +
		"NEWSENDER=[odd name@example.net]\n" +
		"PATH=[/usr/bin:/bin]\n" +
		"RECIPIENT=[joe-list-a-b-c@mail.dept.example.org]\n" +
		"RPLINE=[Return-Path: <\"odd name\"@example.net>\n]\n" +
		"SENDER=[odd name@example.net]\n" +
		"UFLINE=[From odd-name@example.net Fri Jan 02 03:04:05 2026\n]\n" +
		"USER=[joe]\n" +
		f.home + "\n" +
		"did 0+0+1\n"
	if got := f.out.String(); got != want {
		t.Fatalf("environment:\n%s\nwant:\n%s", got, want)
	}
}

func TestProgramReadsSeekableMessage(t *testing.T) {
	f := newFixture(t, testMsg)
	// Two programs each see the whole message from the start.
	f.file(".qmail", "|wc -c\n|cat > copy\n", 0o600)
	f.expect(0, strconv.Itoa(len(testMsg))+"\ndid 0+0+2\n")
	if b, _ := os.ReadFile(filepath.Join(f.home, "copy")); string(b) != testMsg {
		t.Fatalf("copy = %q", b)
	}
}

func TestProgramExitCodes(t *testing.T) {
	cases := map[int]int{0: 0, 99: 0, 100: 100, 64: 100, 65: 100, 70: 100, 76: 100, 77: 100,
		78: 100, 112: 100, 111: 111, 1: 111, 2: 111, 75: 111, 101: 111, 255: 111}
	for code, want := range cases {
		f := newFixture(t, testMsg)
		f.file(".qmail", "|echo said $0; exit "+strconv.Itoa(code)+"\n", 0o600)
		out := "said /bin/sh\n"
		if want == 0 {
			out += "did 0+0+1\n"
		}
		f.expect(want, out)
	}
}

func TestProgramCrashIsTemporary(t *testing.T) {
	f := newFixture(t, testMsg)
	f.file(".qmail", "|kill -SEGV $$\n", 0o600)
	f.expect(111, "Aack, child crashed. (#4.3.0)\n")
}

func TestProgramTimeoutIsTemporary(t *testing.T) {
	f := newFixture(t, testMsg)
	f.file(".qmail", "|sleep 600 & sleep 600\n", 0o600)
	f.opt.ProgramTimeout = 100 * time.Millisecond
	f.expect(111, "Timeout on program delivery. (#4.3.0)\n")
}

func TestExit99StopsButKeepsEarlierForwards(t *testing.T) {
	f := newFixture(t, testMsg)
	f.file(".qmail", "first@example.com\n|exit 99\nsecond@example.com\n|echo not reached\n", 0o600)
	f.expect(0, "did 0+1+1\nqp 4242\n")
	if len(f.queued) != 1 || strings.Join(f.queued[0].recips, ",") != "first@example.com" {
		t.Fatalf("queued %+v", f.queued)
	}
}

func TestFailureStopsEverythingAfterAndAllForwards(t *testing.T) {
	f := newFixture(t, testMsg)
	f.file(".qmail", "&first@example.com\n./Mailbox\n|echo oops; exit 111\n./Mailbox2\nlast@example.com\n", 0o600)
	f.expect(111, "oops\n")
	if len(f.queued) != 0 {
		t.Fatalf("forwarded despite failure: %+v", f.queued)
	}
	if _, err := os.Stat(filepath.Join(f.home, "Mailbox")); err != nil {
		t.Fatal("the delivery before the failure did not happen")
	}
	if _, err := os.Stat(filepath.Join(f.home, "Mailbox2")); err == nil {
		t.Fatal("a delivery after the failure happened")
	}
}

func TestForwardAllAtOnce(t *testing.T) {
	f := newFixture(t, testMsg)
	f.file(".qmail-fwd", "&a@example.com\nb@example.com\n# c@example.com\n&c@example.com\n", 0o600)
	f.ext("joe-fwd", "fwd")
	f.expect(0, "did 0+3+0\nqp 4242\n")
	want := queued{"Delivered-To: joe-fwd@example.org\n" + testMsg, "sender@example.net",
		[]string{"a@example.com", "b@example.com", "c@example.com"}}
	if len(f.queued) != 1 || f.queued[0].msg != want.msg || f.queued[0].sender != want.sender ||
		strings.Join(f.queued[0].recips, " ") != strings.Join(want.recips, " ") {
		t.Fatalf("queued %+v\nwant %+v", f.queued, want)
	}
}

func TestForwardSenders(t *testing.T) {
	cases := []struct {
		files  []string
		sender string
		want   string
	}{
		{nil, "s@example.net", "s@example.net"},
		{[]string{".qmail-list-owner"}, "s@example.net", "joe-list-owner@example.org"},
		{[]string{".qmail-list-owner", ".qmail-list-owner-default"}, "s@example.net", "joe-list-owner-@example.org-@[]"},
		{[]string{".qmail-list-owner-default"}, "s@example.net", "s@example.net"},
		{[]string{".qmail-list-owner", ".qmail-list-owner-default"}, "", ""},
		{[]string{".qmail-list-owner"}, "#@[]", "#@[]"},
	}
	for _, c := range cases {
		f := newFixture(t, testMsg)
		f.file(".qmail-list", "x@example.com\n", 0o600)
		for _, n := range c.files {
			f.file(n, "owner@example.com\n", 0o600)
		}
		f.ext("joe-list", "list")
		f.p.Sender = c.sender
		f.expect(0, "did 0+1+0\nqp 4242\n")
		if f.queued[0].sender != c.want {
			t.Errorf("files %v sender %q: forwarded from %q, want %q", c.files, c.sender, f.queued[0].sender, c.want)
		}
	}
}

func TestForwardFailure(t *testing.T) {
	f := newFixture(t, testMsg)
	f.file(".qmail", "x@example.com\n", 0o600)
	f.qerr = queueclient.Text(53, "")
	f.expect(111, "Unable to forward message: qq write error or disk full (#4.3.0).\n")
	f.qerr = queueclient.Text(31, "")
	f.expect(100, "Unable to forward message: mail server permanently rejected message (#5.3.0).\n")
}

func TestLoopDetection(t *testing.T) {
	f := newFixture(t, "Received: x\nDelivered-To: joe@example.org\nSubject: loop\n\nbody\n")
	f.maildir("Maildir")
	f.expect(100, "This message is looping: it already has my Delivered-To line. (#5.4.6)\n")
	// Another address's line, or ours in the body, is no loop.
	f = newFixture(t, "Delivered-To: other@example.org\n\nDelivered-To: joe@example.org\n")
	f.maildir("Maildir")
	f.expect(0, "did 1+0+0\n")
	// -n does not look.
	f = newFixture(t, "Delivered-To: joe@example.org\n\n")
	f.p.DryRun = true
	f.expect(0, "maildir ./Maildir/\ndid 1+0+0\n")
}

func TestHomeChecks(t *testing.T) {
	f := newFixture(t, testMsg)
	f.maildir("Maildir")
	os.Chmod(f.home, os.ModeSticky|0o700)
	f.expect(111, "Home directory is sticky: user is editing his .qmail file. (#4.2.1)\n")
	f.p.DryRun = true
	f.expect(0, "Warning: home directory is sticky.\nmaildir ./Maildir/\ndid 1+0+0\n")
	f.p.DryRun = false
	os.Chmod(f.home, 0o702)
	f.expect(111, "Uh-oh: home directory is writable. (#4.7.0)\n")
	// conf-patrn is 002: a group-writable home (user private groups) is fine.
	os.Chmod(f.home, 0o770)
	f.expect(0, "did 1+0+0\n")
	f.p.Home = filepath.Join(f.home, "nope")
	f.expect(111, "Unable to switch to "+f.p.Home+": no such file or directory. (#4.3.0)\n")
	f.p.Home = "relative"
	f.expect(100, Usage+"\n")
}

func TestDotQmailChecks(t *testing.T) {
	f := newFixture(t, testMsg)
	f.file(".qmail", "./Mailbox\n", 0o602)
	f.expect(111, "Uh-oh: .qmail file is writable. (#4.7.0)\n")
	f.file(".qmail", "\n./Mailbox\n", 0o600)
	f.expect(111, "Uh-oh: first line of .qmail file is blank. (#4.2.1)\n")
	f.file(".qmail", "./Mailbox\n", 0o700)
	f.expect(111, "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)\n")
	f.file(".qmail", "x@example.com\n|true\n", 0o700)
	f.expect(111, "Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)\n")
	f.file(".qmail", "x@example.com\n", 0o700)
	f.expect(0, "did 0+1+0\nqp 4242\n")
	f.file(".qmail", "|true\n+list\n|true\n", 0o600)
	f.expect(111, "Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)\n")
}

func TestDryRun(t *testing.T) {
	f := newFixture(t, testMsg)
	f.file(".qmail", "# comment\n./Mailbox\n./Maildir/\n|prog arg\n&a@example.com\nb@example.com\n", 0o600)
	f.p.DryRun = true
	f.expect(0, "mbox ./Mailbox\nmaildir ./Maildir/\nprogram prog arg\nforward a@example.com\nforward b@example.com\ndid 2+2+1\n")
	if len(f.queued) != 0 {
		t.Fatal("dry run forwarded")
	}
	if _, err := os.Stat(filepath.Join(f.home, "Mailbox")); err == nil {
		t.Fatal("dry run delivered")
	}
}

func TestMaildirFailures(t *testing.T) {
	f := newFixture(t, testMsg)
	f.file(".qmail", "./Nope/\n", 0o600)
	f.expect(111, "Unable to chdir to maildir. (#4.2.1)\n")
}

func TestUnseekableMessage(t *testing.T) {
	f := newFixture(t, testMsg)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w.WriteString(testMsg)
	w.Close()
	f.msg = r
	f.expect(111, "Unable to rewind message. (#4.3.0)\n")
}

func TestReturnPath(t *testing.T) {
	cases := map[string]string{
		"":                  "Return-Path: <>\n",
		"a@b.example":       "Return-Path: <a@b.example>\n",
		"a b@c":             "Return-Path: <\"a b\"@c>\n",
		"a.b@c":             "Return-Path: <a.b@c>\n",
		".a@c":              "Return-Path: <\".a\"@c>\n",
		"a..b@c":            "Return-Path: <\"a..b\"@c>\n",
		"q\"x\\y@c":         "Return-Path: <\"q\\\"x\\\\y\"@c>\n",
		"x@y@z":             "Return-Path: <\"x@y\"@z>\n",
		"@host":             "Return-Path: <\"\"@host>\n",
		"nl\nx@y":           "Return-Path: <\"nl\\_x\"@y>\n",
		"#@[]":              "Return-Path: <#@[]>\n",
		"l-owner-@h-@[]":    "Return-Path: <\"l-owner-@h-\"@[]>\n",
		"caf\xc3\xa9@h":     "Return-Path: <\"caf\xc3\xa9\"@h>\n",
		"nohost":            "Return-Path: <nohost>\n",
		"a(b)@c":            "Return-Path: <\"a(b)\"@c>\n",
		"user+tag@e.org":    "Return-Path: <user+tag@e.org>\n",
		"a=b/c!d%e@x.y.org": "Return-Path: <a=b/c!d%e@x.y.org>\n",
	}
	for in, want := range cases {
		if got := ReturnPath(in); got != want {
			t.Errorf("ReturnPath(%q) = %q, want %q", in, got, want)
		}
	}
	if got := DeliveredTo("a\nb", "h"); got != "Delivered-To: a_b@h\n" {
		t.Errorf("DeliveredTo = %q", got)
	}
}

func TestHostAndExtParts(t *testing.T) {
	if got := hostParts("a.b.c.d.e"); got != [3]string{"a.b.c.d", "a.b.c", "a.b"} {
		t.Errorf("hostParts = %q", got)
	}
	if got := hostParts("a.b"); got != [3]string{"a", "a", "a"} {
		t.Errorf("hostParts(a.b) = %q", got)
	}
	if got := extParts("x-y"); got != [3]string{"y", "", ""} {
		t.Errorf("extParts = %q", got)
	}
}
