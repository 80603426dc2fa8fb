package inject

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/control"
)

type memQueue struct {
	msg    bytes.Buffer
	from   string
	to     []string
	failed bool
	closed bool
	err    error // what Close returns
}

func (q *memQueue) Write(p []byte) (int, error) { return q.msg.Write(p) }
func (q *memQueue) From(s string)               { q.from = s }
func (q *memQueue) To(s string)                 { q.to = append(q.to, s) }
func (q *memQueue) Fail()                       { q.failed = true }
func (q *memQueue) Close() error                { q.closed = true; return q.err }

var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	stdDate  = "Date: 2 Jan 2026 03:04:05 -0000\n"
	stdMsgID = "Message-ID: <20260102030405.4242.qmail@example.com>\n"
)

type run struct {
	args    []string
	env     map[string]string
	control map[string]string
	in      string
}

func (r run) injector(t *testing.T) (*Injector, error) {
	t.Helper()
	dir := t.TempDir()
	ctl := map[string]string{"me": "example.com"}
	for k, v := range r.control {
		ctl[k] = v
	}
	for k, v := range ctl {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v+"\n"), 0644); err != nil {
			t.Fatal(err)
		}
	}
	env := func(n string) (string, bool) { v, ok := r.env[n]; return v, ok }
	ij, err := New(r.args, env, control.Open(dir))
	if ij != nil {
		ij.now, ij.pid = testNow, 4242
	}
	return ij, err
}

// queue runs qmail-inject and returns what it queued.
func (r run) queue(t *testing.T) *memQueue {
	t.Helper()
	q, err := r.try(t)
	if err != nil {
		t.Fatalf("inject: %v", err)
	}
	return q
}

func (r run) try(t *testing.T) (*memQueue, error) {
	t.Helper()
	ij, err := r.injector(t)
	if err != nil {
		return nil, err
	}
	q := &memQueue{}
	err = ij.Run(strings.NewReader(r.in), func() (Queue, error) { return q, nil }, nil)
	return q, err
}

func env(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestBasicMessage(t *testing.T) {
	q := run{env: env("USER", "joe"), in: "To: bob\nSubject: hi\n\nbody"}.queue(t)
	want := stdDate + stdMsgID + "From: joe@example.com\nTo: bob@example.com\nSubject: hi\n\nbody\n"
	if q.msg.String() != want {
		t.Errorf("message:\n%q\nwant\n%q", q.msg.String(), want)
	}
	if q.from != "joe@example.com" || strings.Join(q.to, " ") != "bob@example.com" || !q.closed || q.failed {
		t.Errorf("envelope %q %q closed=%v failed=%v", q.from, q.to, q.closed, q.failed)
	}
}

func TestFromVariables(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		from string
		envs string
	}{
		{env(), "From: anonymous@example.com\n", "anonymous@example.com"},
		{env("LOGNAME", "l", "USER", "u"), "From: u@example.com\n", "u@example.com"},
		{env("LOGNAME", "l"), "From: l@example.com\n", "l@example.com"},
		{env("QMAILUSER", "q", "MAILUSER", "m", "USER", "u"), "From: q@example.com\n", "q@example.com"},
		{env("USER", "joe", "NAME", "Joe Q. Public"), "From: \"Joe Q. Public\" <joe@example.com>\n", "joe@example.com"},
		{env("USER", "joe", "NAME", "n", "MAILNAME", "Mail Name"), "From: \"Mail Name\" <joe@example.com>\n", "joe@example.com"},
		{env("USER", "joe", "NAME", "Joe", "QMAILINJECT", "c"), "From: joe@example.com (Joe)\n", "joe@example.com"},
		{env("USER", "joe", "QMAILHOST", "mail.example.org"), "From: joe@mail.example.org\n", "joe@mail.example.org"},
		{env("USER", "joe", "MAILHOST", "h"), "From: joe@h.example.com\n", "joe@h.example.com"},
		{env("USER", "joe", "QMAILSUSER", "bounces", "QMAILSHOST", "b.example.net"), "From: joe@example.com\n", "bounces@b.example.net"},
		{env("USER", "a b"), "From: \"a b\"@example.com\n", "a b@example.com"},
		{env("USER", "joe", "QMAILINJECT", "r"), "From: joe@example.com\n", "joe-@example.com-@[]"},
		{env("USER", "joe", "QMAILINJECT", "m"), "From: joe@example.com\n", "joe-1767323045.4242@example.com"},
	} {
		q := run{env: c.env, in: "To: x@y.z\n\n"}.queue(t)
		if got := q.msg.String(); !strings.Contains(got, "\n"+c.from) {
			t.Errorf("env %v: header\n%s\nlacks %q", c.env, got, c.from)
		}
		if q.from != c.envs {
			t.Errorf("env %v: envelope sender %q, want %q", c.env, q.from, c.envs)
		}
	}
}

func TestAddressRewriting(t *testing.T) {
	q := run{
		env:     env("USER", "joe"),
		control: map[string]string{"defaulthost": "mail", "defaultdomain": "example.net", "plusdomain": "plus.org"},
		in:      "To: a, b@host, c@host+, d@x.y, e@[1.2.3.4], f@, <@r1,@r2:g@h.i>, h@x.\nCc: i@j. (comment)\n\n",
	}.queue(t)
	wantTo := "To: a@mail.example.net, b@host.example.net, c@host.plus.org, d@x.y,\n  e@[1.2.3.4], f@mail.example.net, <g@h.i>, h@x.example.net\n"
	if !strings.Contains(q.msg.String(), wantTo) {
		t.Errorf("header\n%s\nlacks\n%s", q.msg.String(), wantTo)
	}
	if !strings.Contains(q.msg.String(), "Cc: i@j.example.net (comment)\n") {
		t.Errorf("Cc not rewritten:\n%s", q.msg.String())
	}
	// Within a field, qmail takes addresses from right to left.
	want := "h@x.example.net g@h.i f@mail.example.net e@[1.2.3.4] d@x.y c@host.plus.org b@host.example.net a@mail.example.net i@j.example.net"
	if got := strings.Join(q.to, " "); got != want {
		t.Errorf("recipients\n%s\nwant\n%s", got, want)
	}
	if q.from != "joe@mail.example.net" {
		t.Errorf("sender %q", q.from)
	}
}

func TestControlEnvironmentOverrides(t *testing.T) {
	q := run{
		env: env("USER", "joe", "QMAILDEFAULTHOST", "dh", "QMAILDEFAULTDOMAIN", "dd.org",
			"QMAILPLUSDOMAIN", "pd.org", "QMAILIDHOST", "ids.example"),
		in: "To: a, b@c+\n\n",
	}.queue(t)
	if got := strings.Join(q.to, " "); got != "b@c.pd.org a@dh.dd.org" {
		t.Errorf("recipients %q", got)
	}
	if !strings.Contains(q.msg.String(), "qmail@ids.example>") {
		t.Errorf("idhost not used:\n%s", q.msg.String())
	}
}

func TestFieldsRemovedAndKept(t *testing.T) {
	in := "Received: from x\nReturn-Path: <rp@example.org>\nTo: a@b.c\nBcc: secret@d.e\n" +
		"Content-Length: 12\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <m@x>\nFrom: me@x.y\n\nbody\n"
	q := run{env: env("USER", "joe"), in: in}.queue(t)
	want := "Received: from x\nTo: a@b.c\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <m@x>\nFrom: me@x.y\n\nbody\n"
	if q.msg.String() != want {
		t.Errorf("message\n%q\nwant\n%q", q.msg.String(), want)
	}
	if q.from != "rp@example.org" {
		t.Errorf("sender %q, want the Return-Path", q.from)
	}
	if got := strings.Join(q.to, " "); got != "a@b.c secret@d.e" {
		t.Errorf("recipients %q", got)
	}
}

func TestQMAILINJECTDeletes(t *testing.T) {
	in := "Return-Path: <rp@example.org>\nTo: a@b.c\nMessage-ID: <m@x>\nFrom: me@x.y\n\n"
	q := run{env: env("USER", "joe", "QMAILINJECT", "sfi"), in: in}.queue(t)
	want := stdDate + stdMsgID + "From: joe@example.com\nTo: a@b.c\n\n"
	if q.msg.String() != want {
		t.Errorf("message\n%q\nwant\n%q", q.msg.String(), want)
	}
	if q.from != "joe@example.com" {
		t.Errorf("sender %q", q.from)
	}
}

func TestSenderOption(t *testing.T) {
	for _, c := range []struct{ f, want string }{
		{"boss@corp.example", "boss@corp.example"},
		{"boss", "boss@example.com"},
		{"", ""},
		{"a b@c.d", "a b@c.d"},
	} {
		q := run{args: []string{"-f", c.f}, env: env("USER", "joe"), in: "Return-Path: <rp@x.y>\nTo: a@b.c\n\n"}.queue(t)
		if q.from != c.want {
			t.Errorf("-f %q: sender %q, want %q", c.f, q.from, c.want)
		}
	}
	q := run{args: []string{"-fx@y.z", "-a", "r@s.t"}, in: "To: a@b.c\n\n"}.queue(t)
	if q.from != "x@y.z" || strings.Join(q.to, " ") != "r@s.t" {
		t.Errorf("-fx@y.z -a: %q %q", q.from, q.to)
	}
}

func TestRecipientStrategies(t *testing.T) {
	in := "To: h1@x.y\nCc: h2@x.y\nApparently-To: h3@x.y\n\n"
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "h1@x.y h2@x.y h3@x.y"},
		{[]string{"a1@x.y", "a2"}, "a1@x.y a2@example.com"},
		{[]string{"-A", "a1@x.y"}, "a1@x.y"},
		{[]string{"-a", "a1@x.y"}, "a1@x.y"},
		{[]string{"-h", "a1@x.y"}, "h1@x.y h2@x.y h3@x.y"},
		{[]string{"-H", "a1@x.y"}, "a1@x.y h1@x.y h2@x.y h3@x.y"},
		{[]string{"-H", "--", "-a@x.y"}, "-a@x.y h1@x.y h2@x.y h3@x.y"},
		{[]string{"-anN", "a1@x.y"}, "a1@x.y"},
	} {
		q := run{args: c.args, in: in}.queue(t)
		if got := strings.Join(q.to, " "); got != c.want {
			t.Errorf("%q: recipients %q, want %q", c.args, got, c.want)
		}
	}
}

func TestResent(t *testing.T) {
	in := "Resent-To: fwd@x.y\nResent-Bcc: hidden@x.y\nFrom: orig@a.b\nTo: orig-rcpt@a.b\nDate: old\nMessage-ID: <old@a.b>\n\nbody\n"
	q := run{env: env("USER", "joe"), in: in}.queue(t)
	want := "Resent-" + stdDate + "Resent-" + stdMsgID + "Resent-From: joe@example.com\n" +
		"Resent-To: fwd@x.y\nFrom: orig@a.b\nTo: orig-rcpt@a.b\nDate: old\nMessage-ID: <old@a.b>\n\nbody\n"
	if q.msg.String() != want {
		t.Errorf("message\n%q\nwant\n%q", q.msg.String(), want)
	}
	if got := strings.Join(q.to, " "); got != "fwd@x.y hidden@x.y" {
		t.Errorf("recipients %q", got)
	}
	q = run{in: "Resent-From: me@x.y\nTo: a@b.c\n\n", args: []string{"r@s.t"}}.queue(t)
	if !strings.Contains(q.msg.String(), "Resent-Cc: recipient list not shown: ;\n") ||
		strings.Contains(q.msg.String(), "\nDate:") {
		t.Errorf("resent header:\n%s", q.msg.String())
	}
}

func TestRecipientListNotShown(t *testing.T) {
	q := run{args: []string{"a@b.c"}, env: env("USER", "joe"), in: "Subject: s\n\nx\n"}.queue(t)
	want := stdDate + stdMsgID + "From: joe@example.com\nCc: recipient list not shown: ;\nSubject: s\n\nx\n"
	if q.msg.String() != want {
		t.Errorf("message\n%q\nwant\n%q", q.msg.String(), want)
	}
}

func TestHeaderBodySplit(t *testing.T) {
	for _, c := range []struct{ in, tail string }{
		// A line that is not a field starts the body after an inserted blank line.
		{"To: a@b.c\nnot a field\nmore", "To: a@b.c\n\nnot a field\nmore\n"},
		// A mbox From line is kept as MBOX-Line.
		{"From joe Mon Jan 1\nTo: a@b.c\n\nx", "MBOX-Line: From joe Mon Jan 1\nTo: a@b.c\n\nx\n"},
		// Continuation lines belong to their field.
		{"To: a@b.c,\n\td@e.f\nSubject: one\n two\n\nx\n", "To: a@b.c, d@e.f\nSubject: one\n two\n\nx\n"},
		// Header only, no body.
		{"To: a@b.c", "To: a@b.c\n"},
		// Body bytes pass untouched, even long lines and NULs.
		{"To: a@b.c\n\n" + strings.Repeat("z", 200000) + "\x00\n", "To: a@b.c\n\n" + strings.Repeat("z", 200000) + "\x00\n"},
	} {
		q := run{env: env("USER", "joe"), in: c.in}.queue(t)
		if !strings.HasSuffix(q.msg.String(), c.tail) {
			t.Errorf("%.40q: message\n%.300q\nshould end\n%.300q", c.in, q.msg.String(), c.tail)
		}
	}
}

func TestMailFollowupTo(t *testing.T) {
	dir := t.TempDir()
	mft := filepath.Join(dir, "lists")
	os.WriteFile(mft, []byte("# lists\nList@Lists.Example\n"), 0644)
	q := run{env: env("QMAILMFTFILE", mft), in: "To: a@b.c, list@lists.example\n\n"}.queue(t)
	if !strings.Contains(q.msg.String(), "Mail-Followup-To: a@b.c,\n  list@lists.example\n") {
		t.Errorf("no Mail-Followup-To:\n%s", q.msg.String())
	}
	q = run{env: env("QMAILMFTFILE", mft), in: "To: a@b.c\n\n"}.queue(t)
	if strings.Contains(q.msg.String(), "Mail-Followup-To") {
		t.Errorf("Mail-Followup-To without a list:\n%s", q.msg.String())
	}
}

func TestPrintMode(t *testing.T) {
	ij, err := run{args: []string{"-n"}, env: env("USER", "joe")}.injector(t)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = ij.Run(strings.NewReader("To: a\n\nhi\n"), func() (Queue, error) {
		t.Fatal("-n must not queue")
		return nil, nil
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	want := "Return-Path: <joe@example.com>\n" + stdDate + stdMsgID + "From: joe@example.com\nTo: a@example.com\n\nhi\n"
	if out.String() != want {
		t.Errorf("printed\n%q\nwant\n%q", out.String(), want)
	}
}

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		r    run
		code int
		msg  string
	}{
		{run{args: []string{"-x"}}, 100, "unknown option -x"},
		{run{args: []string{"-f"}}, 100, "needs an argument"},
		{run{args: []string{"a@)"}, in: "\n"}, 100, "unable to parse address: a@)"},
		{run{in: "From: \"unterminated\nTo: a@b.c\n\n"}, 100, "unable to parse this line:\nFrom: \"unterminated"},
		{run{in: "Subject: nobody\n\n"}, 100, "no recipients"},
		{run{in: "To: a@b.c\nX-Long: " + strings.Repeat("x", MaxFieldBytes) + "\n\n"}, 100, "longer than"},
		{run{in: "To: a@b.c\nX-Long: x\n" + strings.Repeat(" folded\n", MaxFieldBytes/8+1) + "\n"}, 100, "longer than"},
		{run{control: map[string]string{"defaulthost": "a(b"}}, 100, "unable to parse this line:\n@a(b"},
		{run{in: "To: a\x00b@c.d\n\n"}, 100, "NUL"},
		{run{in: "To: " + strings.Repeat("a,", MaxRecipients+1) + "a\n\n"}, 100, "more than"},
		{run{in: strings.Repeat("Bcc: "+strings.Repeat("a,", 30000)+"a\n", 4) + "\n"}, 100, "more than"},
		{run{in: strings.Repeat("Content-Length: "+strings.Repeat("1", 1<<19)+"\n", 34) + "\n"}, 100, "header longer than"},
	} {
		_, err := c.r.try(t)
		var e *Error
		if !errors.As(err, &e) || e.Code != c.code || !strings.Contains(e.Msg, c.msg) {
			t.Errorf("%v: got %v, want %d %q", c.r.args, err, c.code, c.msg)
		}
	}
}

// A To field qmail cannot parse is kept as it is; its addresses before the fault
// (read from the right) still count, as in qmail.
func TestUnparsableRecipientFieldKept(t *testing.T) {
	q := run{in: "To: a:b@c.d\nCc: e@f.g\n\n"}.queue(t)
	if !strings.Contains(q.msg.String(), "\nTo: a:b@c.d\n") {
		t.Errorf("To rewritten:\n%s", q.msg.String())
	}
	if got := strings.Join(q.to, " "); got != "b@c.d e@f.g" {
		t.Errorf("recipients %q", got)
	}
}

type permError struct{}

func (permError) Error() string  { return "mail server permanently rejected message (#5.3.0)" }
func (permError) Status() string { return "Dmail server permanently rejected message (#5.3.0)" }

func TestQueueRefusal(t *testing.T) {
	ij, _ := run{}.injector(t)
	q := &memQueue{err: permError{}}
	err := ij.Run(strings.NewReader("To: a@b.c\n\n"), func() (Queue, error) { return q, nil }, nil)
	var e *Error
	if !errors.As(err, &e) || e.Code != 100 || !strings.Contains(e.Msg, "permanently rejected") {
		t.Errorf("got %v", err)
	}
	ij, _ = run{}.injector(t)
	q = &memQueue{err: errors.New("qq write error or disk full (#4.3.0)")}
	err = ij.Run(strings.NewReader("To: a@b.c\n\n"), func() (Queue, error) { return q, nil }, nil)
	if !errors.As(err, &e) || e.Code != 111 {
		t.Errorf("got %v", err)
	}
}

type errReader struct{ data string }

func (r *errReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, errors.New("disk on fire")
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// A read error in the body abandons the message: nothing is queued.
func TestReadErrorAbandons(t *testing.T) {
	ij, _ := run{}.injector(t)
	q := &memQueue{}
	err := ij.Run(&errReader{"To: a@b.c\n\nsome body"}, func() (Queue, error) { return q, nil }, nil)
	var e *Error
	if !errors.As(err, &e) || e.Code != 111 || !q.failed || !q.closed || q.from != "" {
		t.Errorf("got %v, failed=%v closed=%v from=%q", err, q.failed, q.closed, q.from)
	}
}

// The examples of qmail-header(5), with defaultdomain berkeley.edu.
func TestQmailHeaderExamples(t *testing.T) {
	q := run{
		control: map[string]string{"defaultdomain": "berkeley.edu", "plusdomain": "berkeley.edu"},
		in:      "To: djb@silverton, eric@mammoth.cs+, djb@[128.32.183.163]\nCc: djb fred\n\n",
	}.queue(t)
	for _, want := range []string{
		"To: djb@silverton.berkeley.edu, eric@mammoth.cs.berkeley.edu,\n  djb@[128.32.183.163]\n",
		"Cc: djb@example.com, fred@example.com\n", // defaulthost (me) already has a dot
	} {
		if !strings.Contains(q.msg.String(), want) {
			t.Errorf("header lacks %q:\n%s", want, q.msg.String())
		}
	}
}
