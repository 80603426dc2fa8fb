package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/sandbox"
)

// The kinds of destination, by message number modulo 5.
const (
	toMaildir = iota
	toMbox
	toProgram
	toForward
	toExtension
	kinds
)

const (
	sink     = "alice-sink@" + domain // envelope sender of every message; bounces land here
	messages = 1000
)

func recipientFor(i int) string {
	switch i % kinds {
	case toMaildir:
		return "alice@" + domain
	case toMbox:
		return "alice-mbox@" + domain
	case toProgram:
		return "alice-prog@" + domain
	case toForward:
		return "alice-fwd@" + domain
	}
	return "alice-ext-" + strconv.Itoa(i) + "@" + domain
}

// setupAlice gives alice the .qmail files of the acceptance test.
func setupAlice(t *testing.T, h *sandbox.Home) {
	home := h.UserHome("alice")
	ownedFile(t, h, filepath.Join(home, ".qmail"), "./Maildir/\n", 0644)
	ownedFile(t, h, filepath.Join(home, ".qmail-mbox"), "./mbox\n", 0644)
	ownedDir(t, h, filepath.Join(home, "prog"))
	// The program keeps DTLINE, to show qmail-local's environment reached it.
	ownedFile(t, h, filepath.Join(home, ".qmail-prog"),
		"|f=$(mktemp \"$HOME/prog/m.XXXXXX\") && { printf '%s' \"$DTLINE\"; cat; } > \"$f\"\n", 0644)
	ownedFile(t, h, filepath.Join(home, ".qmail-fwd"), "&bob@"+domain+"\n", 0644)
	ownedMaildir(t, h, filepath.Join(home, "Maildir-ext"))
	ownedFile(t, h, filepath.Join(home, ".qmail-ext-default"), "./Maildir-ext/\n", 0644)
	ownedMaildir(t, h, filepath.Join(home, "Maildir-sink"))
	ownedFile(t, h, filepath.Join(home, ".qmail-sink"), "./Maildir-sink/\n", 0644)
}

// message i, injected four ways in turn: sendmail -t, sendmail with arguments,
// qmail-inject with header recipients, qmail-inject -a; and now and then through
// datemail or mailsubj.
func injectMessage(h *sandbox.Home, i int) error {
	rcpt := recipientFor(i)
	body := fmt.Sprintf("message %d\nFrom the start, a line mbox must quote.\n.\nend of %d\n", i, i)
	switch i % 20 {
	case 5:
		return inject(h, "Subject: e2e "+strconv.Itoa(i)+"\n\n"+body, "datemail", "-f", sink, rcpt)
	case 7:
		// mailsubj has no -f: the sender comes from qmail-inject's variables.
		return injectEnv(h, []string{"QMAILSUSER=alice-sink", "QMAILSHOST=" + domain}, body, "mailsubj", "e2e "+strconv.Itoa(i), rcpt)
	}
	switch i % 4 {
	case 0:
		return inject(h, "To: "+rcpt+"\nSubject: e2e "+strconv.Itoa(i)+"\n\n"+body, "sendmail", "-t", "-i", "-f", sink)
	case 1:
		return inject(h, "Subject: e2e "+strconv.Itoa(i)+"\n\n"+body, "sendmail", "-oi", "-oem", "-f", sink, rcpt)
	case 2:
		return inject(h, "Return-Path: <"+sink+">\nTo: "+rcpt+"\nSubject: e2e "+strconv.Itoa(i)+"\n\n"+body, "qmail-inject")
	}
	return inject(h, "Subject: e2e "+strconv.Itoa(i)+"\n\n"+body, "qmail-inject", "-f"+sink, "-a", rcpt)
}

var deliveredToRE = regexp.MustCompile(`(?m)^Delivered-To: (.*)$`)

var dateRE = regexp.MustCompile(`(?m)^Date: .*$`)

var subjectRE = regexp.MustCompile(`(?m)^Subject: e2e (\d+)$`)

// subjectOf returns the message number in a message's Subject, or -1.
func subjectOf(msg string) int {
	m := subjectRE.FindStringSubmatch(msg)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestThousandMessages injects 1,000 messages through sendmail and qmail-inject, checks
// that each is queued with the right envelope, then lets the daemons deliver them and
// checks every delivery against the .qmail files.
func TestThousandMessages(t *testing.T) {
	t.Parallel() // independent sandboxes; overlap the retry test's waiting
	h := sandbox.New(t, sandbox.Options{Domain: domain, Users: []string{"alice", "bob"}})
	setupAlice(t, h)
	ownedFile(t, h, filepath.Join(h.Dir, "control", "concurrencylocal"), "40\n", 0644)

	start := time.Now()
	// Inject with qmail-send not running, so the queue can be checked as written.
	var wg sync.WaitGroup
	errs := make(chan error, messages)
	work := make(chan int)
	// Several at once: each qmail-queue waits on fsync.
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := injectMessage(h, i); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := 0; i < messages; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	q := h.Queue()
	ids, err := q.Todo()
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != messages {
		t.Fatalf("%d messages in todo/, want %d", len(ids), messages)
	}
	seen := map[int]bool{}
	for _, id := range ids {
		env, err := q.ReadEnvelope(id)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := os.ReadFile(q.Path("mess", id))
		if err != nil {
			t.Fatal(err)
		}
		n := subjectOf(string(msg))
		if n < 0 || seen[n] {
			t.Fatalf("message %d: subject number %d missing or repeated:\n%s", id, n, msg)
		}
		seen[n] = true
		if env.Sender != sink || len(env.Recipients) != 1 || env.Recipients[0] != recipientFor(n) {
			t.Errorf("message %d (e2e %d): envelope %q -> %q, want %q -> %q", id, n, env.Sender, env.Recipients, sink, recipientFor(n))
		}
		if !strings.HasPrefix(string(msg), "Received: (qmail ") || strings.Contains(string(msg), "Return-Path:") ||
			strings.Count(string(msg), "\nDate: ") != 1 || strings.Count(string(msg), "\nMessage-ID: <") != 1 {
			t.Errorf("message %d: header not as qmail-inject and qmail-queue write it:\n%s", id, msg)
		}
		// datemail's Date is local time with its offset; qmail-inject's is -0000.
		if utc := strings.HasSuffix(dateRE.FindString(string(msg)), " -0000"); utc == (n%20 == 5) {
			t.Errorf("message %d (e2e %d): wrong Date for how it was sent:\n%s", id, n, msg)
		}
	}

	t.Logf("injected and checked %d messages in %v", messages, time.Since(start))
	needDaemons(t, h)
	start = time.Now()
	m := startMTA(t, h)
	m.WaitFor("the queue to empty", h.QueueEmpty)
	stop(t, m)
	t.Logf("delivered in %v", time.Since(start))
	checkDeliveries(t, h)
}

func checkDeliveries(t *testing.T, h *sandbox.Home) {
	home := h.UserHome("alice")
	got := map[int][]int{} // kind -> message numbers
	check := func(kind int, msg string, dtlines ...string) {
		t.Helper()
		n := subjectOf(msg)
		if n < 0 || n%kinds != kind {
			t.Errorf("message for kind %d has subject number %d:\n%s", kind, n, msg)
			return
		}
		got[kind] = append(got[kind], n)
		// Exactly these Delivered-To lines, newest first.
		var want []string
		for _, dt := range dtlines {
			want = append(want, strings.ReplaceAll(dt, "%d", strconv.Itoa(n)))
		}
		var have []string
		for _, m := range deliveredToRE.FindAllStringSubmatch(msg, -1) {
			have = append(have, m[1])
		}
		if strings.Join(have, " ") != strings.Join(want, " ") {
			t.Errorf("e2e %d: Delivered-To %q, want %q:\n%s", n, have, want, msg)
		}
		if !strings.Contains(msg, fmt.Sprintf("\n\nmessage %d\n", n)) || !strings.HasSuffix(msg, fmt.Sprintf("end of %d\n", n)) {
			t.Errorf("e2e %d: body damaged:\n%s", n, msg)
		}
	}
	maildir := func(kind int, dir, rp string, dts ...string) {
		for _, msg := range maildirFiles(t, dir) {
			if !strings.HasPrefix(msg, "Return-Path: <"+rp+">\nDelivered-To: ") {
				t.Errorf("%s: message does not start with Return-Path and Delivered-To:\n%s", dir, msg)
			}
			if !strings.Contains(msg, "\nFrom the start, a line mbox must quote.\n") {
				t.Errorf("%s: a Maildir message was quoted:\n%s", dir, msg)
			}
			check(kind, msg, dts...)
		}
	}
	maildir(toMaildir, h.Maildir("alice"), sink, "alice@"+domain)
	maildir(toForward, h.Maildir("bob"), sink, "bob@"+domain, "alice-fwd@"+domain)
	maildir(toExtension, filepath.Join(home, "Maildir-ext"), sink, "alice-ext-%d@"+domain)

	mbox, err := os.ReadFile(filepath.Join(home, "mbox"))
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range splitMbox(t, string(mbox)) {
		if !strings.Contains(msg, "\n>From the start, a line mbox must quote.\n") {
			t.Errorf("mbox: From line in the body not quoted:\n%s", msg)
		}
		check(toMbox, msg, "alice-mbox@"+domain)
	}

	progs, err := os.ReadDir(filepath.Join(home, "prog"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range progs {
		b, err := os.ReadFile(filepath.Join(home, "prog", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "Delivered-To: alice-prog@"+domain+"\n") {
			t.Errorf("program delivery without DTLINE:\n%s", b)
		}
		check(toProgram, string(b), "alice-prog@"+domain)
	}

	for kind := 0; kind < kinds; kind++ {
		nums := got[kind]
		sort.Ints(nums)
		want := messages / kinds
		if len(nums) != want {
			t.Errorf("kind %d: %d deliveries, want %d", kind, len(nums), want)
		}
		for j := 1; j < len(nums); j++ {
			if nums[j] == nums[j-1] {
				t.Errorf("kind %d: e2e %d delivered twice", kind, nums[j])
			}
		}
	}
	if n := countFiles(filepath.Join(home, "Maildir-sink")); n != 0 {
		t.Errorf("%d bounces reached the sender", n)
	}
	if n := countFiles(h.Maildir("alias")); n != 0 {
		t.Errorf("%d messages reached the postmaster", n)
	}
}

// splitMbox splits an mbox into messages without their From_ lines, checking each
// From_ line names the envelope sender.
func splitMbox(t *testing.T, mbox string) []string {
	t.Helper()
	if mbox == "" {
		return nil
	}
	if !strings.HasPrefix(mbox, "From ") {
		t.Fatalf("mbox does not start with a From line: %.200q", mbox)
	}
	var msgs []string
	parts := strings.Split("\n"+mbox, "\nFrom ")[1:]
	for i, part := range parts {
		line, rest, _ := strings.Cut(part, "\n")
		if !strings.HasPrefix(line, sink+" ") {
			t.Errorf("mbox From line %q does not name the sender", line)
		}
		// Each message is followed by a blank line; the split took it, except after
		// the last one.
		if i == len(parts)-1 {
			if !strings.HasSuffix(rest, "\n\n") {
				t.Errorf("mbox does not end with a blank line")
			}
			rest = strings.TrimSuffix(rest, "\n")
		}
		msgs = append(msgs, rest)
	}
	return msgs
}
