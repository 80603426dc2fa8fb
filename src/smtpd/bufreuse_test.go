package smtpd

import (
	"strings"
	"testing"
)

// Sessions reuse their buffers: what one client sent past QUIT, or a reply left
// unsent when it hung up, must never reach the next session.
func TestSessionBuffersNotShared(t *testing.T) {
	q := &memQueue{}
	for i := range 20 {
		// The first session leaves a pipelined MAIL unread after QUIT.
		first := dialog(t, testConfig(q), "EHLO a.example\r\nQUIT\r\nMAIL FROM:<leak@example.net>\r\nRCPT TO:<x@example.org>\r\n")
		if strings.Contains(first, "2.1.0") {
			t.Fatalf("round %d: commands after QUIT answered: %q", i, first)
		}
		// The next one sends a transaction without MAIL: leftover bytes from the
		// first would make its RCPT acceptable.
		second := dialog(t, testConfig(q), "EHLO b.example\r\nRCPT TO:<y@example.org>\r\nQUIT\r\n")
		if got := replies(second); len(got) < 2 || !strings.HasPrefix(got[len(got)-2], "503 5.5.1 MAIL first") {
			t.Fatalf("round %d: second session: %q", i, second)
		}
	}
	if n := len(q.all()); n != 0 {
		t.Errorf("%d messages queued", n)
	}
}
