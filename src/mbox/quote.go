package mbox

import (
	"bytes"
	"io"
)

// Quoter copies a message into an mbox, putting '>' before every line that starts
// with "From " after any number of '>' (qmail's gfrom rule), so that readers can undo
// the quoting. It streams: memory use does not depend on line length.
type Quoter struct {
	w       io.Writer
	atStart bool // at the start of a line, deciding
	gt      int  // '>' bytes seen at the start of this line, not yet written
	match   int  // bytes of "From " seen after them, not yet written
	partial bool // a line has been started and not ended
}

// NewQuoter returns a Quoter writing to w.
func NewQuoter(w io.Writer) *Quoter { return &Quoter{w: w, atStart: true} }

const fromSpace = "From "

var gts = bytes.Repeat([]byte{'>'}, 512)

func (q *Quoter) writeGT(n int) error {
	for n > 0 {
		k := min(n, len(gts))
		if _, err := q.w.Write(gts[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// flushPending writes what was held back at the start of a line, quoted if quote.
func (q *Quoter) flushPending(quote bool) error {
	n := q.gt
	if quote {
		n++
	}
	if err := q.writeGT(n); err != nil {
		return err
	}
	if _, err := io.WriteString(q.w, fromSpace[:q.match]); err != nil {
		return err
	}
	q.gt, q.match = 0, 0
	return nil
}

// Write quotes and copies p.
func (q *Quoter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if !q.atStart {
			i := bytes.IndexByte(p, '\n')
			chunk := p
			if i >= 0 {
				chunk = p[:i+1]
			}
			if _, err := q.w.Write(chunk); err != nil {
				return total - len(p), err
			}
			p = p[len(chunk):]
			if i >= 0 {
				q.atStart, q.partial = true, false
			}
			continue
		}
		c := p[0]
		q.partial = true
		switch {
		case q.match == 0 && c == '>':
			q.gt++
			p = p[1:]
		case c == fromSpace[q.match]:
			q.match++
			p = p[1:]
			if q.match == len(fromSpace) {
				if err := q.flushPending(true); err != nil {
					return total - len(p), err
				}
				q.atStart = false
			}
		default:
			// Undecided bytes are not "From ": write them plainly and go on with
			// this byte as ordinary line content.
			if err := q.flushPending(false); err != nil {
				return total - len(p), err
			}
			q.atStart = false
		}
	}
	return total, nil
}

// Finish writes anything held back and ends an unterminated last line with a newline,
// as qmail does.
func (q *Quoter) Finish() error {
	if err := q.flushPending(false); err != nil {
		return err
	}
	if q.partial {
		q.partial = false
		q.atStart = true
		_, err := io.WriteString(q.w, "\n")
		return err
	}
	return nil
}
