package send

import (
	"io"
	"strings"
	"time"

	"github.com/notqmail/notqmail/src/mailaddr"
)

// BounceRecord is the block qmail-send appends to bounce/<id> for one failed
// recipient: "<recip>:", the report, and a blank line. A blank line inside the report
// would end the block early, so its second newline becomes '/'.
func BounceRecord(recip, report string) []byte {
	b := []byte("<" + strings.ReplaceAll(recip, "\n", "_") + ">:\n" + report)
	if report != "" && !strings.HasSuffix(report, "\n") {
		b = append(b, '\n')
	}
	for i := len(b) - 2; i > 0; i-- {
		if b[i] == '\n' && b[i-1] == '\n' {
			b[i] = '/'
		}
	}
	return append(b, '\n')
}

// Date822 formats t as qmail's header dates: "21 Nov 2026 23:32:12 -0000", in UTC.
func Date822(t time.Time) string {
	return t.UTC().Format("2 Jan 2006 15:04:05") + " -0000"
}

// BounceSpec describes one bounce message.
type BounceSpec struct {
	Sender     string    // the original envelope sender; "" for a bounce that bounced
	BounceFrom string    // control/bouncefrom
	BounceHost string    // control/bouncehost
	DoubleTo   string    // doublebounceto@doublebouncehost
	Date       time.Time // when the bounce is made
}

// Envelope returns the bounce's envelope sender and recipient: a bounce goes from <> to
// the original sender; a double bounce goes from #@[] to the postmaster.
func (b BounceSpec) Envelope() (sender, recip string) {
	if b.Sender != "" {
		return "", b.Sender
	}
	return "#@[]", b.DoubleTo
}

// Message returns the bounce message: qmail's headers and text, the failure records
// from bounce/<id>, then the original message with its Return-Path. It streams the two
// files instead of reading them into memory.
func (b BounceSpec) Message(records, original io.Reader) io.Reader {
	_, to := b.Envelope()
	var h strings.Builder
	h.WriteString("Date: " + Date822(b.Date) + "\n")
	h.WriteString(headerLine("From: " + mailaddr.QuoteLocal(b.BounceFrom) + "@" + b.BounceHost))
	h.WriteString(headerLine("To: " + mailaddr.QuoteAddr(to)))
	h.WriteString("Subject: failure notice\n\n")
	h.WriteString("Hi. This is the qmail-send program at " + b.BounceHost + ".\n")
	var sep string
	if b.Sender != "" {
		h.WriteString("I'm afraid I wasn't able to deliver your message to the following addresses.\n" +
			"This is a permanent error; I've given up. Sorry it didn't work out.\n\n")
		sep = "--- Below this line is a copy of the message.\n\n"
	} else {
		h.WriteString("I tried to deliver a bounce message to this address, but the bounce bounced!\n\n")
		sep = "--- Below this line is the original bounce.\n\n"
	}
	sep += headerLine("Return-Path: <" + mailaddr.QuoteAddr(b.Sender) + ">")
	return io.MultiReader(strings.NewReader(h.String()), records, strings.NewReader(sep), original)
}

// headerLine ends a header line, first turning any CR or LF inside it into '_': an
// envelope address may hold any byte, and must not add header lines of its own to the
// bounce (qmail-local does the same for Return-Path and Delivered-To).
func headerLine(s string) string {
	return strings.NewReplacer("\r", "_", "\n", "_").Replace(s) + "\n"
}
