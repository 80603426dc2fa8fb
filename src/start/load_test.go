package start_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/sandbox"
)

// TestBacklogDrains queues a backlog while qmail-send is down, then starts the MTA:
// every message is delivered and the queue drains.
func TestBacklogDrains(t *testing.T) {
	n := 200
	if testing.Short() {
		n = 30
	}
	h := newHome(t, "alice")
	for i := 0; i < n; i++ {
		submit(t, h, "load@far.example", "alice@"+h.Domain, fmt.Sprintf("load-%d", i))
	}
	log := &sandbox.Log{}
	start := time.Now()
	startMTA(t, h, log)
	msgs := h.WaitMessages(t, "alice", n)
	waitQueueEmpty(t, h, log)
	if len(msgs) != n {
		t.Errorf("%d deliveries of %d messages", len(msgs), n)
	}
	t.Logf("%d queued messages delivered in %v", n, time.Since(start))
}
