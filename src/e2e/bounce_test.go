package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/sandbox"
)

// lifetime is the queuelifetime of the retry test, in seconds: short, so that a
// temporarily failing delivery reaches its last try within the test.
const lifetime = 8

func lineCount(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

// TestRetryBounceDoubleBounce: a program that fails temporarily is retried (forced
// with SIGALRM) and bounced once the queue lifetime is over; a permanent failure
// bounces at once to the sender; a bounce that cannot be delivered goes to the
// postmaster as a double bounce.
func TestRetryBounceDoubleBounce(t *testing.T) {
	t.Parallel() // independent sandboxes; overlap the retry test's waiting
	h := sandbox.New(t, sandbox.Options{Domain: domain, Users: []string{"alice"}})
	needDaemons(t, h)
	home := h.UserHome("alice")
	ownedFile(t, h, filepath.Join(home, ".qmail"), "./Maildir/\n", 0644)
	ownedFile(t, h, filepath.Join(home, ".qmail-tempfail"), "|echo attempt >> \"$HOME/attempts\"; echo not now; exit 111\n", 0644)
	ownedFile(t, h, filepath.Join(home, ".qmail-permfail"), "|echo no such thing here; exit 100\n", 0644)
	ownedFile(t, h, filepath.Join(h.Dir, "control", "queuelifetime"), strconv.Itoa(lifetime)+"\n", 0644)

	m := startMTA(t, h)
	injected := time.Now()
	if err := inject(h, "Subject: try later\n\nretry me\n", "sendmail", "-f", "alice@"+domain, "alice-tempfail@"+domain); err != nil {
		t.Fatal(err)
	}
	if err := inject(h, "Subject: refused\n\nbounce me\n", "sendmail", "-f", "alice@"+domain, "alice-permfail@"+domain); err != nil {
		t.Fatal(err)
	}
	// The bounce of this one goes to an address that does not exist.
	if err := inject(h, "Subject: refused twice\n\ndouble bounce me\n", "sendmail", "-f", "alice-nobox@"+domain, "alice-permfail@"+domain); err != nil {
		t.Fatal(err)
	}

	attempts := filepath.Join(home, "attempts")
	m.WaitFor("the first attempt", func() bool { return lineCount(attempts) >= 1 })
	m.WaitFor("the permanent failure's bounce", func() bool { return countFiles(h.Maildir("alice")) >= 1 })
	m.WaitFor("the double bounce", func() bool { return countFiles(h.Maildir("alias")) >= 1 })

	bounces := maildirFiles(t, h.Maildir("alice"))
	if len(bounces) != 1 {
		t.Fatalf("%d messages for alice before the lifetime is over, want the one bounce", len(bounces))
	}
	checkBounce(t, bounces[0], "alice@"+domain, "alice-permfail@"+domain, "no such thing here", "Subject: refused\n")

	double := maildirFiles(t, h.Maildir("alias"))
	if len(double) != 1 {
		t.Fatalf("%d double bounces, want 1", len(double))
	}
	d := double[0]
	for _, want := range []string{
		"Delivered-To: postmaster@" + domain + "\n",
		"To: postmaster@" + domain + "\n",
		"Subject: failure notice\n",
		"I tried to deliver a bounce message to this address, but the bounce bounced!",
		"<alice-nobox@" + domain + ">:",
		"<alice-permfail@" + domain + ">:", // the original bounce, attached
		"Subject: refused twice\n",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("double bounce lacks %q:\n%s", want, d)
		}
	}
	if !strings.HasPrefix(d, "Return-Path: <>\n") && !strings.HasPrefix(d, "Return-Path: <#@[]>\n") {
		t.Errorf("double bounce has a sender that could bounce again:\n%s", d)
	}

	// Retries: each SIGALRM makes qmail-send try again now.
	m.Alarm()
	m.WaitFor("the second attempt", func() bool { return lineCount(attempts) >= 2 })
	t.Logf("second attempt after %v", time.Since(injected))
	// After the lifetime, one last try turns the temporary failure into a bounce.
	time.Sleep(time.Until(injected.Add((lifetime + 2) * time.Second)))
	m.Alarm()
	m.WaitFor("the bounce after the lifetime", func() bool { return countFiles(h.Maildir("alice")) >= 2 })
	t.Logf("bounced after %v", time.Since(injected))
	// Normally three: the first, the SIGALRM retry, and the last try after the
	// lifetime; two if a loaded machine got to the retry after the lifetime.
	if n := lineCount(attempts); n < 2 {
		t.Errorf("%d attempts before the bounce, want a retry at least", n)
	}
	var late string
	for _, b := range maildirFiles(t, h.Maildir("alice")) {
		if strings.Contains(b, "alice-tempfail@") {
			late = b
		}
	}
	checkBounce(t, late, "alice@"+domain, "alice-tempfail@"+domain, "not now", "Subject: try later\n")
	m.WaitFor("the queue to empty", h.QueueEmpty)
	t.Logf("queue empty after %v", time.Since(injected))
	stop(t, m)
	t.Logf("stopped after %v", time.Since(injected))
	if log := m.Log().String(); !strings.Contains(log, "deferral") || !strings.Contains(log, "failure") {
		t.Errorf("qmail-send's log lacks deferral and failure lines:\n%s", log)
	}
}

// checkBounce checks a bounce in qmail's format.
func checkBounce(t *testing.T, b, to, failed, report, original string) {
	t.Helper()
	for _, want := range []string{
		"Return-Path: <>\n",
		"From: MAILER-DAEMON@" + domain + "\n",
		"To: " + to + "\n",
		"Subject: failure notice\n",
		"Hi. This is the qmail-send program at " + domain + ".",
		"<" + failed + ">:\n",
		report,
		"--- Below this line is a copy of the message.\n",
		original,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("bounce to %s lacks %q:\n%s", to, want, b)
		}
	}
}
