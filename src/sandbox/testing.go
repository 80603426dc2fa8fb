package sandbox

import (
	"os"
	"testing"
	"time"
)

// New creates a sandbox home for a test, under a fresh directory that the sandbox
// owner can traverse (t.TempDir's directories are 0700), and removes it when the test
// ends. It stops the test on failure.
func New(t testing.TB, opt Options) *Home {
	t.Helper()
	parent, err := os.MkdirTemp("", "notqmail-sandbox-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0755); err != nil {
		os.RemoveAll(parent)
		t.Fatal(err)
	}
	h, err := Create(parent+"/home", opt)
	if err != nil {
		os.RemoveAll(parent)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Remove(); err != nil {
			t.Errorf("sandbox: removing %s: %v", h.Dir, err)
		}
		os.Remove(parent)
	})
	return h
}

// WaitTimeout bounds WaitMessages so that a broken delivery fails the test instead of
// hanging it; it is a deadlock guard, not a performance expectation.
var WaitTimeout = 2 * time.Minute

// WaitMessages waits until a user's Maildir holds at least n messages and returns
// them; it fails the test if that does not happen within WaitTimeout.
func (h *Home) WaitMessages(t testing.TB, user string, n int) []Message {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for {
		msgs, err := h.Messages(user)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox: %d of %d messages in %s's Maildir after %v", len(msgs), n, user, WaitTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
