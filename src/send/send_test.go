package send

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

func TestRewrite(t *testing.T) {
	r := &Rewriter{
		EnvNoAtHost: "example.org",
		Locals:      map[string]bool{"example.org": true, "localhost": true},
		PercentHack: map[string]bool{"gw.example.org": true},
		VirtualDoms: map[string]string{
			"virt.example":      "vu",
			".wild.example":     "wu",
			"no.wild.example":   "",
			"joe@other.example": "joeuser",
			"sub.virt.example":  "sv",
			"exc@virt.example":  "",
		},
	}
	cases := []struct {
		in, out string
		local   bool
	}{
		{"bob", "bob@example.org", true},
		{"bob@EXAMPLE.org", "bob@EXAMPLE.org", true},
		{"bob@remote.example", "bob@remote.example", false},
		{"bob%remote.example@gw.example.org", "bob@remote.example", false},
		{"bob%localhost@gw.example.org", "bob@localhost", true},
		{"a%b%gw.example.org@gw.example.org", "a@b", false},
		{"x@virt.example", "vu-x@virt.example", true},
		{"x@Virt.Example", "vu-x@Virt.Example", true},
		{"x@a.wild.example", "wu-x@a.wild.example", true},
		{"x@no.wild.example", "x@no.wild.example", false},
		{"joe@other.example", "joeuser-joe@other.example", true},
		{"jim@other.example", "jim@other.example", false},
		{"x@sub.virt.example", "sv-x@sub.virt.example", true},
		{"exc@virt.example", "exc@virt.example", false},
	}
	for _, c := range cases {
		out, local := r.Rewrite(c.in)
		if out != c.out || local != c.local {
			t.Errorf("Rewrite(%q) = %q,%v; want %q,%v", c.in, out, local, c.out, c.local)
		}
	}
	if got := r.StripVirtualPrepend("vu-x@virt.example"); got != "x@virt.example" {
		t.Errorf("strip: %q", got)
	}
	if got := r.StripVirtualPrepend("other-x@virt.example"); got != "other-x@virt.example" {
		t.Errorf("strip of a foreign prefix: %q", got)
	}
	if got := r.StripVirtualPrepend("wu-x@a.wild.example"); got != "x@a.wild.example" {
		t.Errorf("strip wildcard: %q", got)
	}
}

func TestDeliverySender(t *testing.T) {
	cases := [][3]string{
		{"owner-@list.example-@[]", "joe@home.example", "owner-joe=home.example@list.example"},
		{"plain@example.org", "joe@home.example", "plain@example.org"},
		{"", "joe@home.example", ""},
		{"#@[]", "postmaster@x", "#@[]"},
		{"nobody-@[]", "joe@home.example", "nobody-@[]"}, // no @ before -@[]
		{"owner-@list-@[]", "nohost", "owner-@list-@[]"}, // recipient without @
	}
	for _, c := range cases {
		if got := DeliverySender(c[0], c[1]); got != c[2] {
			t.Errorf("DeliverySender(%q,%q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

func TestRetrySchedule(t *testing.T) {
	birth := int64(1_000_000)
	// A fresh message: first local retry after 100 s, remote after 400 s.
	if got := NextRetry(birth, birth, Local); got != birth+100 {
		t.Errorf("local first retry at +%d", got-birth)
	}
	if got := NextRetry(birth, birth, Remote); got != birth+400 {
		t.Errorf("remote first retry at +%d", got-birth)
	}
	// After an hour: sqrt(3600)=60, (60+20)^2 = 6400.
	if got := NextRetry(birth, birth+3600, Remote); got != birth+6400 {
		t.Errorf("remote retry after 1h at +%d", got-birth)
	}
	// Non-square ages round the root down: sqrt(3700) -> 60.
	if got := NextRetry(birth, birth+3700, Local); got != birth+4900 {
		t.Errorf("local retry after 3700s at +%d", got-birth)
	}
	// A birth in the future (clock stepped back) counts as age 0.
	if got := NextRetry(birth, birth-50, Local); got != birth+100 {
		t.Errorf("future birth: +%d", got-birth)
	}
	for x := int64(0); x < 200000; x += 37 {
		r := isqrt(x)
		if r*r > x || (r+1)*(r+1) <= x {
			t.Fatalf("isqrt(%d) = %d", x, r)
		}
	}
	// The retry is always after now, so a deferred message is never busy-retried.
	for age := int64(0); age < 8*86400; age += 997 {
		if NextRetry(birth, birth+age, Local) <= birth+age {
			t.Fatalf("retry not in the future at age %d", age)
		}
	}
}

func TestBounceRecord(t *testing.T) {
	got := string(BounceRecord("joe@example.org", "Sorry, no mailbox here by that name. (#5.1.1)\n"))
	want := "<joe@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
	if got != want {
		t.Errorf("got %q want %q", got, want)
	}
	// A report without final newline gets one; a blank line inside is broken up;
	// a newline in the address becomes _.
	got = string(BounceRecord("a\nb@x", "line1\n\nline3"))
	want = "<a_b@x>:\nline1\n/line3\n\n"
	if got != want {
		t.Errorf("got %q want %q", got, want)
	}
	if got := string(BounceRecord("a@x", "")); got != "<a@x>:\n\n" {
		t.Errorf("empty report: %q", got)
	}
}

func TestBounceHeadersCannotBeInjected(t *testing.T) {
	spec := BounceSpec{Sender: "joe\nBcc: victim@example.net\r\nX: y@example.org", BounceFrom: "MAILER-DAEMON",
		BounceHost: "mx.example.org", Date: time.Unix(0, 0)}
	b, _ := io.ReadAll(spec.Message(strings.NewReader(""), strings.NewReader("")))
	head, _, _ := strings.Cut(string(b), "\n\n")
	for _, l := range strings.Split(head, "\n") {
		if !strings.HasPrefix(l, "Date: ") && !strings.HasPrefix(l, "From: ") &&
			!strings.HasPrefix(l, "To: ") && !strings.HasPrefix(l, "Subject: ") {
			t.Errorf("bounce header has an injected line %q:\n%s", l, head)
		}
	}
	if !strings.Contains(string(b), "Return-Path: <") || strings.Contains(string(b), "\nBcc:") {
		t.Errorf("Return-Path of the copy carries the injection:\n%s", b)
	}
}

func TestBounceMessage(t *testing.T) {
	date := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	spec := BounceSpec{Sender: "joe@example.org", BounceFrom: "MAILER-DAEMON", BounceHost: "mx.example.org",
		DoubleTo: "postmaster@example.org", Date: date}
	s, r := spec.Envelope()
	if s != "" || r != "joe@example.org" {
		t.Fatalf("envelope %q %q", s, r)
	}
	recs := string(BounceRecord("x@y", "Sorry. (#5.1.1)\n"))
	b, _ := io.ReadAll(spec.Message(strings.NewReader(recs), strings.NewReader("Subject: hi\n\nbody\n")))
	want := "Date: 4 Mar 2026 05:06:07 -0000\n" +
		"From: MAILER-DAEMON@mx.example.org\n" +
		"To: joe@example.org\n" +
		"Subject: failure notice\n\n" +
		"Hi. This is the qmail-send program at mx.example.org.\n" +
		"I'm afraid I wasn't able to deliver your message to the following addresses.\n" +
		"This is a permanent error; I've given up. Sorry it didn't work out.\n\n" +
		"<x@y>:\nSorry. (#5.1.1)\n\n" +
		"--- Below this line is a copy of the message.\n\n" +
		"Return-Path: <joe@example.org>\n" +
		"Subject: hi\n\nbody\n"
	if string(b) != want {
		t.Errorf("bounce:\n%s\nwant:\n%s", b, want)
	}

	dbl := spec
	dbl.Sender = ""
	s, r = dbl.Envelope()
	if s != "#@[]" || r != "postmaster@example.org" {
		t.Fatalf("double bounce envelope %q %q", s, r)
	}
	b, _ = io.ReadAll(dbl.Message(strings.NewReader(recs), strings.NewReader("orig\n")))
	if !bytes.Contains(b, []byte("To: postmaster@example.org\n")) ||
		!bytes.Contains(b, []byte("I tried to deliver a bounce message to this address, but the bounce bounced!\n\n<x@y>")) ||
		!bytes.Contains(b, []byte("--- Below this line is the original bounce.\n\nReturn-Path: <>\norig\n")) {
		t.Errorf("double bounce:\n%s", b)
	}
}

func TestLogLines(t *testing.T) {
	var buf bytes.Buffer
	l := Logger{W: &buf}
	l.NewMsg(42)
	l.InfoMsg(42, 1234, "joe@example.org", 777, 1001)
	l.Starting(1, 42, Local, "bob@example.org")
	l.Starting(2, 42, Remote, "x y@example.net")
	l.Status([nchan]int{1, 1}, [nchan]int{10, 20}, false)
	l.Result(1, 'K', "did_0+0+1/")
	l.Result(2, 'Z', "Connected to 1.2.3.4 but sender was rejected.\nRemote host said: 451 try later\n")
	l.Result(3, 'D', "Sorry, no mailbox here by that name. (#5.1.1)\n")
	l.Result(4, 'X', "")
	l.Status([nchan]int{0, 0}, [nchan]int{10, 20}, true)
	l.BounceMsg(42, 999)
	l.EndMsg(42)
	l.TripleBounce("bounce/42")
	l.Exiting()
	want := `new msg 42
info msg 42: bytes 1234 from <joe@example.org> qp 777 uid 1001
starting delivery 1: msg 42 to local bob@example.org
starting delivery 2: msg 42 to remote x_y@example.net
status: local 1/10 remote 1/20
delivery 1: success: did_0+0+1/
delivery 2: deferral: Connected_to_1.2.3.4_but_sender_was_rejected./Remote_host_said:_451_try_later/
delivery 3: failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/
delivery 4: report mangled, will defer
status: local 0/10 remote 0/20 exitasap
bounce msg 42 qp 999
end msg 42
triple bounce: discarding bounce/42
status: exiting
`
	if buf.String() != want {
		t.Errorf("log:\n%s\nwant:\n%s", buf.String(), want)
	}
	if got := Safe("a%b\x01\xffc"); got != "a_b__c" {
		t.Errorf("Safe: %q", got)
	}
}

func TestDate822(t *testing.T) {
	loc := time.FixedZone("X", 3600)
	if got := Date822(time.Date(2026, 12, 1, 0, 4, 5, 0, loc)); got != "30 Nov 2026 23:04:05 -0000" {
		t.Errorf("Date822: %q", got)
	}
}
