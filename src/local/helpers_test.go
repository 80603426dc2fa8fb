package local

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/queueclient"
)

type helperFixture struct {
	h      Helper
	out    bytes.Buffer
	errs   bytes.Buffer
	env    map[string]string
	queued []queued
}

func newHelper(t *testing.T, message string) *helperFixture {
	t.Helper()
	m, err := os.CreateTemp(t.TempDir(), "msg")
	if err != nil {
		t.Fatal(err)
	}
	m.WriteString(message)
	m.Seek(0, io.SeekStart)
	t.Cleanup(func() { m.Close() })
	f := &helperFixture{env: map[string]string{
		"SENDER":    "s@example.net",
		"NEWSENDER": "joe-owner@example.org",
		"DTLINE":    "Delivered-To: joe@example.org\n",
		"RPLINE":    "Return-Path: <s@example.net>\n",
		"UFLINE":    "From s@example.net Thu Jan 01 00:00:00 1970\n",
	}}
	f.h = Helper{
		Stdin:  m,
		Stdout: &f.out,
		Stderr: &f.errs,
		Getenv: func(k string) (string, bool) { v, ok := f.env[k]; return v, ok },
		Queue: func(msg io.Reader, sender string, recips []string) (int, error) {
			b, err := io.ReadAll(msg)
			if err != nil {
				return 0, err
			}
			f.queued = append(f.queued, queued{string(b), sender, recips})
			return 77, nil
		},
	}
	return f
}

func TestHelperForward(t *testing.T) {
	f := newHelper(t, testMsg)
	if code := f.h.Forward([]string{"a@x", "b@y"}); code != 0 {
		t.Fatalf("exit %d: %s", code, f.errs.String())
	}
	if f.errs.String() != "forward: qp 77\n" {
		t.Fatalf("stderr %q", f.errs.String())
	}
	q := f.queued[0]
	if q.msg != "Delivered-To: joe@example.org\n"+testMsg || q.sender != "joe-owner@example.org" || strings.Join(q.recips, " ") != "a@x b@y" {
		t.Fatalf("queued %+v", q)
	}
}

func TestHelperForwardQueueFailure(t *testing.T) {
	f := newHelper(t, testMsg)
	f.h.Queue = func(io.Reader, string, []string) (int, error) { return 0, queueclient.Text(31, "") }
	if code := f.h.Forward([]string{"a@x"}); code != 100 || f.errs.String() != "forward: fatal: mail server permanently rejected message (#5.3.0)\n" {
		t.Fatalf("exit %d, %q", code, f.errs.String())
	}
	f = newHelper(t, testMsg)
	f.h.Queue = func(io.Reader, string, []string) (int, error) { return 0, queueclient.Text(74, "") }
	if code := f.h.Forward([]string{"a@x"}); code != 111 {
		t.Fatalf("exit %d", code)
	}
}

func TestHelperCondRedirectRewinds(t *testing.T) {
	f := newHelper(t, testMsg)
	// The condition reads the whole message; the forward must still get all of it.
	if code := f.h.CondRedirect([]string{"new@x", "sh", "-c", "cat >/dev/null"}); code != 99 {
		t.Fatalf("exit %d: %s", code, f.errs.String())
	}
	q := f.queued[0]
	if q.msg != "Delivered-To: joe@example.org\n"+testMsg || q.sender != "s@example.net" || q.recips[0] != "new@x" {
		t.Fatalf("queued %+v", q)
	}
	for cond, want := range map[string]int{"exit 1": 0, "exit 100": 0, "exit 111": 111, "kill -9 $$": 111} {
		f := newHelper(t, testMsg)
		if code := f.h.CondRedirect([]string{"new@x", "sh", "-c", cond}); code != want || len(f.queued) != 0 {
			t.Errorf("condition %q: exit %d, queued %d; want %d, 0", cond, code, len(f.queued), want)
		}
	}
	f = newHelper(t, testMsg)
	if code := f.h.CondRedirect([]string{"new@x", "/no/such/program"}); code != 0 {
		t.Fatalf("missing program: exit %d", code)
	}
}

func TestHelperBounceSayingAndExcept(t *testing.T) {
	f := newHelper(t, testMsg)
	if code := f.h.BounceSaying([]string{"No thanks."}); code != 100 || f.errs.String() != "No thanks.\n" {
		t.Fatalf("exit %d %q", code, f.errs.String())
	}
	cases := []struct {
		cond         string
		bounce, excp int
	}{{"exit 0", 100, 100}, {"exit 1", 0, 0}, {"exit 100", 0, 0}, {"exit 111", 111, 111}, {"kill -9 $$", 111, 111}}
	for _, c := range cases {
		f := newHelper(t, testMsg)
		if code := f.h.BounceSaying([]string{"No.", "sh", "-c", c.cond}); code != c.bounce {
			t.Errorf("bouncesaying %q: exit %d, want %d", c.cond, code, c.bounce)
		}
		f = newHelper(t, testMsg)
		if code := f.h.Except([]string{"sh", "-c", c.cond}); code != c.excp {
			t.Errorf("except %q: exit %d, want %d", c.cond, code, c.excp)
		}
	}
	f = newHelper(t, testMsg)
	if code := f.h.Except([]string{"/no/such/program"}); code != 0 {
		t.Fatalf("except of a missing program: exit %d", code)
	}
}

func TestHelperPreline(t *testing.T) {
	cases := map[string]string{
		"":    "From s@example.net Thu Jan 01 00:00:00 1970\nReturn-Path: <s@example.net>\nDelivered-To: joe@example.org\n",
		"-f":  "Return-Path: <s@example.net>\nDelivered-To: joe@example.org\n",
		"-rd": "From s@example.net Thu Jan 01 00:00:00 1970\n",
		"-dD": "From s@example.net Thu Jan 01 00:00:00 1970\nReturn-Path: <s@example.net>\nDelivered-To: joe@example.org\n",
	}
	for opt, head := range cases {
		f := newHelper(t, testMsg)
		args := []string{"cat"}
		if opt != "" {
			args = append([]string{opt}, args...)
		}
		if code := f.h.Preline(args); code != 0 || f.out.String() != head+testMsg {
			t.Errorf("preline %s: exit %d, output %q", opt, code, f.out.String())
		}
	}
	f := newHelper(t, testMsg)
	if code := f.h.Preline([]string{"sh", "-c", "cat >/dev/null; exit 42"}); code != 42 {
		t.Fatalf("exit code not passed on: %d", code)
	}
	f = newHelper(t, testMsg)
	delete(f.env, "RPLINE")
	if code := f.h.Preline([]string{"cat"}); code != 100 {
		t.Fatalf("without RPLINE: exit %d", code)
	}
	f = newHelper(t, testMsg)
	if code := f.h.Preline([]string{"-x", "cat"}); code != 100 {
		t.Fatalf("bad option: exit %d", code)
	}
	f = newHelper(t, testMsg)
	if code := f.h.Preline([]string{"/no/such/program"}); code != 100 || !strings.HasPrefix(f.errs.String(), "preline: fatal: unable to run /no/such/program: ") {
		t.Fatalf("missing program: exit %d %q", code, f.errs.String())
	}
}

func TestHelperPrelineCommandStopsReading(t *testing.T) {
	// A message bigger than a pipe buffer to a command that reads nothing: qmail's
	// preline fails temporarily rather than pretend the delivery worked.
	f := newHelper(t, strings.Repeat("x", 1<<20))
	if code := f.h.Preline([]string{"true"}); code != 111 || !strings.HasPrefix(f.errs.String(), "preline: fatal: unable to copy input: ") {
		t.Fatalf("exit %d %q", code, f.errs.String())
	}
}
