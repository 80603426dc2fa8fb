package send

import (
	"io"
	"strings"
	"time"
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

// atomOK lists the bytes RFC 822 allows in an unquoted local part (qmail's quote.c).
func atomOK(c byte) bool {
	if c >= 128 || c < 33 || c == 127 {
		return false
	}
	return !strings.ContainsRune("\"(),:;<>@[\\]", rune(c))
}

func quoteNeeded(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); i++ {
		if !atomOK(s[i]) {
			return true
		}
	}
	return s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..")
}

// QuoteLocal quotes a local part when RFC 822 needs it, doing as little as possible.
func QuoteLocal(s string) string {
	if !quoteNeeded(s) {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\r', '\n', '"', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// QuoteAddr quotes the local part of an address (up to its last @).
func QuoteAddr(addr string) string {
	if addr == "" {
		return ""
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return QuoteLocal(addr)
	}
	return QuoteLocal(addr[:at]) + addr[at:]
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
	h.WriteString("From: " + QuoteLocal(b.BounceFrom) + "@" + b.BounceHost + "\n")
	h.WriteString("To: " + QuoteAddr(to) + "\n")
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
	sep += "Return-Path: <" + QuoteAddr(b.Sender) + ">\n"
	return io.MultiReader(strings.NewReader(h.String()), records, strings.NewReader(sep), original)
}
