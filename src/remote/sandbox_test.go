package remote

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/sandbox"
)

// ManyEnv sets how many messages TestSandboxManyToSink sends through qmail-send; the
// default is issue 5's acceptance figure, and -short sends 300.
const ManyEnv = "NOTQMAIL_REMOTE_MANY"

// guard bounds the waits below; a deadlock guard, not a speed expectation.
const guard = 5 * time.Minute

// TestSandboxManyToSink runs the whole MTA in a sandbox home (qmail-start, qmail-send,
// qmail-rspawn, and the built qmail-remote) with concurrencyremote 20 and an
// smtproutes default route to smtp-sink, and checks that every queued message arrives
// exactly once.
func TestSandboxManyToSink(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 300
	}
	if v := os.Getenv(ManyEnv); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("%s=%q is not a count", ManyEnv, v)
		}
	}
	s := startSink(t)
	// Through a counting proxy: qmail-rspawn delivers in process and reuses
	// connections, so far fewer connections than messages.
	rec := startRecorder(t, fmt.Sprintf("127.0.0.1:%d", s.Port))
	h := sandbox.New(t, sandbox.Options{})
	needMTA(t, h)
	ctl := func(name, text string) { writeOwned(t, h, filepath.Join("control", name), text) }
	ctl("smtproutes", fmt.Sprintf(":127.0.0.1:%d\n", portOf(rec.Addr)))
	ctl("concurrencyremote", "20\n")
	ctl("helohost", "sandbox.example\n")

	begin := time.Now()
	// Queue everything first, four at a time, then start the MTA.
	work := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				msg := fmt.Sprintf("Subject: many %d\n\n.dot line %d\n", i, i)
				if err := h.Submit(strings.NewReader(msg), "sender@sandbox.example", []string{fmt.Sprintf("r%d@remote.example", i)}); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	queued := time.Now()
	t.Logf("queued %d messages in %v", n, queued.Sub(begin))

	m := h.StartMTA(t, sandbox.MTAOptions{Guard: guard})
	m.WaitFor("the queue to empty", h.QueueEmpty)
	m.Stop()
	t.Logf("delivered %d messages in %v", n, time.Since(queued))

	got := s.Messages(t)
	seen := map[string]int{}
	subject := regexp.MustCompile(`(?m)^Subject: many (\d+)$`)
	for _, m := range got {
		sm := subject.FindStringSubmatch(m)
		if sm == nil {
			t.Fatalf("captured message without our subject:\n%s", m)
		}
		seen[sm[1]]++
		if !strings.Contains(m, "\n.dot line "+sm[1]+"\n") {
			t.Errorf("message %s lost its dot line:\n%s", sm[1], m)
		}
	}
	for i := 0; i < n; i++ {
		if c := seen[strconv.Itoa(i)]; c != 1 {
			t.Errorf("message %d arrived %d times", i, c)
		}
	}
	if len(got) != n {
		t.Errorf("smtp-sink captured %d messages, want %d", len(got), n)
	}
	t.Logf("%d connections for %d messages", rec.Conns(), n)
	if c := rec.Conns(); c > n/2 {
		t.Errorf("%d connections for %d messages: qmail-rspawn did not reuse them", c, n)
	}
	// qmail-rspawn QUITs its idle connections when qmail-send stops it.
	waitFor(t, "a QUIT on every connection", func() bool { return strings.Count(rec.Sent(), "QUIT\r\n") == rec.Conns() })
	if c := strings.Count(m.Log().String(), "success: 127.0.0.1_accepted_message."); c != n && t.Failed() {
		t.Logf("qmail-send logged %d successes\n%s", c, tail(m.Log().String()))
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

// needMTA skips the test when the sandbox's binary lacks a daemon.
func needMTA(t *testing.T, h *sandbox.Home) {
	t.Helper()
	for _, p := range []string{"qmail-start", "qmail-send", "qmail-lspawn", "qmail-local", "qmail-rspawn", "qmail-remote", "qmail-clean"} {
		if _, err := os.Lstat(filepath.Join(h.Bin, p)); err != nil {
			t.Skipf("the sandbox's notqmail does not serve %s yet", p)
		}
	}
}

// writeOwned writes a file in the home, owned by the sandbox's user.
func writeOwned(t *testing.T, h *sandbox.Home, rel, text string) {
	t.Helper()
	p := filepath.Join(h.Dir, rel)
	if err := os.WriteFile(p, []byte(text), 0644); err != nil {
		t.Fatal(err)
	}
	os.Chown(p, h.UID, h.GID)
}

// TestSandboxPostfixRetryAndBounce sends through the whole MTA to Postfix: an
// accepted recipient is delivered, a 4xx leaves the message queued for a retry, and a
// 5xx bounces to the sender's Maildir with Postfix's words in it.
func TestSandboxPostfixRetryAndBounce(t *testing.T) {
	pf := startPostfix(t)
	h := sandbox.New(t, sandbox.Options{})
	needMTA(t, h)
	writeOwned(t, h, "control/smtproutes", fmt.Sprintf("example.test:127.0.0.1:%d\n", pf.Port))
	sender := "alice@" + h.Domain
	for _, r := range []string{"ok@example.test", pfTempRcpt, pfPermRcpt} {
		msg := "Subject: to " + r + "\n\nhello\n"
		if err := h.Submit(strings.NewReader(msg), sender, []string{r}); err != nil {
			t.Fatal(err)
		}
	}
	m := h.StartMTA(t, sandbox.MTAOptions{Guard: guard})
	logHas := func(s string) func() bool { return func() bool { return strings.Contains(m.Log().String(), s) } }
	m.WaitFor("the delivery to Postfix", logHas("success: 127.0.0.1_accepted_message./Remote_host_said:_250_2.0.0_Ok:_queued_as_"))
	m.WaitFor("the deferral", logHas("deferral: 127.0.0.1_does_not_like_recipient./Remote_host_said:_450_4.2.0_<temp@example.test>"))
	m.WaitFor("the failure", logHas("failure: 127.0.0.1_does_not_like_recipient./Remote_host_said:_550_5.1.1_<perm@example.test>"))
	msgs := h.WaitMessages(t, "alice", 1)
	bounce := string(msgs[0].Data)
	for _, want := range []string{"<perm@example.test>:", "550 5.1.1 <perm@example.test>: Recipient address rejected: no such user here", "TLS unverified"} {
		if !strings.Contains(bounce, want) {
			t.Errorf("bounce lacks %q:\n%s", want, bounce)
		}
	}
	m.Stop()
	// The deferred message is still queued for its retry.
	if h.QueueEmpty() {
		t.Errorf("the 4xx message left the queue\n%s", tail(m.Log().String()))
	}
}

// TestSandboxWrapperIsRun: a site's own bin/qmail-remote (here a wrapper script, as
// DKIM signers install) is run for every delivery instead of delivering in process.
func TestSandboxWrapperIsRun(t *testing.T) {
	s := startSink(t)
	h := sandbox.New(t, sandbox.Options{})
	needMTA(t, h)
	writeOwned(t, h, "control/smtproutes", fmt.Sprintf(":127.0.0.1:%d\n", s.Port))
	marks := sharedDir(t, "nq-wrapper-")
	os.Chmod(marks, 0777)
	wrapper := filepath.Join(h.Bin, "qmail-remote")
	if err := os.Remove(wrapper); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\n: > " + marks + "/\"$3\"\nexec " + filepath.Join(h.Bin, "notqmail") + " qmail-remote \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0755); err != nil {
		t.Fatal(err)
	}
	rcpts := []string{"one@remote.example", "two@remote.example"}
	for _, r := range rcpts {
		if err := h.Submit(strings.NewReader("Subject: wrapped\n\nhi\n"), "sender@sandbox.example", []string{r}); err != nil {
			t.Fatal(err)
		}
	}
	m := h.StartMTA(t, sandbox.MTAOptions{Guard: guard})
	m.WaitFor("the queue to empty", h.QueueEmpty)
	m.Stop()
	for _, r := range rcpts {
		if _, err := os.Stat(filepath.Join(marks, r)); err != nil {
			t.Errorf("the wrapper did not run for %s: %v\n%s", r, err, tail(m.Log().String()))
		}
	}
	if got := len(s.Messages(t)); got != len(rcpts) {
		t.Errorf("smtp-sink captured %d messages, want %d", got, len(rcpts))
	}
}
