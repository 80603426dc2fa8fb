package send

import (
	"io"
	"strconv"
)

// Logger writes qmail-send's log lines. The words and their order are qmail's, so that
// log analysers written for qmail (qmailanalog's matchup and friends) keep working.
// Each line goes out in a single write so lines from one process never interleave.
type Logger struct {
	W io.Writer
}

// line writes the pieces as one line; pieces marked by safe() are made log-safe first.
func (l Logger) line(parts ...string) {
	if l.W == nil {
		return
	}
	n := 1
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	b = append(b, '\n')
	l.W.Write(b) // a dead logger must not stop deliveries
}

// Safe makes report or address text fit on one log line as qmail-send does: a newline
// becomes '/', and '%', spaces, control characters and bytes above 126 become '_'.
func Safe(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c == '\n':
			b[i] = '/'
		case c == '%' || c < 33 || c > 126:
			b[i] = '_'
		}
	}
	return string(b)
}

func num(n uint64) string { return strconv.FormatUint(n, 10) }

// Alert and Warning lines.
func (l Logger) Alert(msg string)   { l.line("alert: ", msg) }
func (l Logger) Warning(msg string) { l.line("warning: ", msg) }

// NewMsg: todo/<id> is being preprocessed.
func (l Logger) NewMsg(id uint64) { l.line("new msg ", num(id)) }

// InfoMsg: the message's size, sender, queueing process and uid.
func (l Logger) InfoMsg(id uint64, bytes int64, sender string, qp, uid uint64) {
	l.line("info msg ", num(id), ": bytes ", strconv.FormatInt(bytes, 10), " from <", Safe(sender), "> qp ", num(qp), " uid ", num(uid))
}

// Starting: delivery delid of message id to one recipient.
func (l Logger) Starting(delid, id uint64, channel int, recip string) {
	l.line("starting delivery ", num(delid), ": msg ", num(id), chanTo[channel], Safe(recip))
}

// Result: the spawner's report for a delivery: kind is 'K', 'Z' or 'D'.
func (l Logger) Result(delid uint64, kind byte, text string) {
	switch kind {
	case 'K':
		l.line("delivery ", num(delid), ": success: ", Safe(text))
	case 'Z':
		l.line("delivery ", num(delid), ": deferral: ", Safe(text))
	case 'D':
		l.line("delivery ", num(delid), ": failure: ", Safe(text))
	default:
		l.line("delivery ", num(delid), ": report mangled, will defer")
	}
}

// Status: deliveries in progress and the concurrency limits.
func (l Logger) Status(used, limit [nchan]int, exiting bool) {
	parts := []string{"status:"}
	for c := 0; c < nchan; c++ {
		parts = append(parts, chanStatus[c], strconv.Itoa(used[c]), "/", strconv.Itoa(limit[c]))
	}
	if exiting {
		parts = append(parts, " exitasap")
	}
	l.line(parts...)
}

// EndMsg: message id has left the queue.
func (l Logger) EndMsg(id uint64) { l.line("end msg ", num(id)) }

// BounceMsg: the bounce for message id was queued by process qp.
func (l Logger) BounceMsg(id, qp uint64) { l.line("bounce msg ", num(id), " qp ", num(qp)) }

// TripleBounce: a failed double bounce is thrown away.
func (l Logger) TripleBounce(bounceFile string) { l.line("triple bounce: discarding ", bounceFile) }

// Exiting is the last line of a clean shutdown.
func (l Logger) Exiting() { l.line("status: exiting") }

// pipeBuf is PIPE_BUF on Linux: a write to a pipe of at most this many bytes is
// atomic, so lines batched into one write still never interleave with another
// writer's.
const pipeBuf = 4096

// logBuffer collects whole log lines so that qmail-send writes them once per round of
// its main loop (before it waits) instead of once per line; the lines and their order
// are unchanged. Only the main loop writes to it.
type logBuffer struct {
	w   io.Writer
	buf []byte
}

// Write takes one or more whole lines.
func (b *logBuffer) Write(p []byte) (int, error) {
	if len(b.buf)+len(p) > pipeBuf {
		b.flush()
	}
	if len(p) > pipeBuf {
		return b.w.Write(p) // alone, as it would have gone unbuffered
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// flush writes out the lines collected so far.
func (b *logBuffer) flush() {
	if len(b.buf) == 0 {
		return
	}
	b.w.Write(b.buf) // a dead logger must not stop deliveries
	b.buf = b.buf[:0]
}

// flushLog writes out the log lines of this round of the main loop; it is called
// before anything that may wait.
func (d *Daemon) flushLog() {
	if d.logBuf != nil {
		d.logBuf.flush()
	}
}
