package remote

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/sandbox"
)

// ManyEnv sets how many messages TestSandboxManyToSink sends through qmail-send;
// the default keeps the ordinary test run short, the acceptance run uses 2000.
const ManyEnv = "NOTQMAIL_REMOTE_MANY"

// guard bounds the waits below; a deadlock guard, not a speed expectation.
const guard = 5 * time.Minute

// TestSandboxManyToSink runs the whole MTA in a sandbox home (qmail-start, qmail-send,
// qmail-rspawn, and the built qmail-remote) with concurrencyremote 20 and an
// smtproutes default route to smtp-sink, and checks that every queued message arrives
// exactly once.
func TestSandboxManyToSink(t *testing.T) {
	n := 300
	if v := os.Getenv(ManyEnv); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("%s=%q is not a count", ManyEnv, v)
		}
	}
	s := startSink(t)
	h := sandbox.New(t, sandbox.Options{})
	for _, p := range []string{"qmail-start", "qmail-send", "qmail-rspawn", "qmail-remote", "qmail-clean"} {
		if _, err := os.Lstat(filepath.Join(h.Bin, p)); err != nil {
			t.Skipf("the sandbox's notqmail does not serve %s yet", p)
		}
	}
	ctl := func(name, text string) {
		p := filepath.Join(h.Dir, "control", name)
		if err := os.WriteFile(p, []byte(text), 0644); err != nil {
			t.Fatal(err)
		}
		os.Chown(p, h.UID, h.GID)
	}
	ctl("smtproutes", fmt.Sprintf(":127.0.0.1:%d\n", s.Port))
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

	var log syncBuffer
	cmd := h.Command("qmail-start", "./Maildir/")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(guard):
				cmd.Process.Kill()
				<-exited
			}
		})
	}
	defer stop()

	deadline := time.Now().Add(guard)
	for !queueEmpty(h) {
		select {
		case err := <-exited:
			t.Fatalf("qmail-send exited: %v\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue not empty after %v\n%s", guard, tail(log.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
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
	if c := strings.Count(log.String(), "success: 127.0.0.1_accepted_message."); c != n && t.Failed() {
		t.Logf("qmail-send logged %d successes\n%s", c, tail(log.String()))
	}
}

func queueEmpty(h *sandbox.Home) bool {
	q := h.Queue()
	if ids, err := q.Todo(); err != nil || len(ids) > 0 {
		return false
	}
	empty := true
	filepath.WalkDir(filepath.Join(q.Dir, "info"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			empty = false
		}
		return nil
	})
	return empty
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}
