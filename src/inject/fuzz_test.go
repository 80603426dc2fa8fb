package inject

import (
	"strings"
	"testing"
)

// FuzzInject feeds hostile messages through the whole header pipeline: it must never
// panic, and whatever it queues must be a complete message with sane envelope
// addresses.
func FuzzInject(f *testing.F) {
	for _, s := range []string{
		"To: a, b@c+, <@r:d@e.>\nCc: group: x, y;\nBcc: z\n\nbody",
		"From joe\nResent-To: r\nReturn-Path: <>\n\n",
		"To: \"q\\\"x\" <a@[1.2.3.4]>, (c) d@@e\n",
		"From: \"\nTo: x\n\n",
		"To: a:b\n\n",
		" leading continuation\nTo: x\n",
		"To: x\r\n\r\nbody\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := run{env: env("USER", "joe"), in: in}
		q, err := r.try(t)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !strings.HasSuffix(q.msg.String(), "\n") {
			t.Fatalf("message does not end in a newline: %q", q.msg.String())
		}
		if len(q.to) == 0 {
			t.Fatalf("queued with no recipients")
		}
	})
}
