package smtpd

import (
	"strconv"
	"strings"
)

// Reply is one SMTP reply. Text may hold several lines separated by '\n'.
type Reply struct {
	Code int
	Enh  string // RFC 3463 enhanced status code such as "5.7.1"; "" when none applies
	Text string
}

// render formats the reply for the wire. A client that saw ENHANCEDSTATUSCODES in the
// EHLO reply gets the code after the reply code (RFC 2034); any other client gets
// qmail's own style, the code in parentheses after an error text, so HELO clients
// and log scrapers see exactly qmail's replies.
func (r Reply) render(enhanced bool) string {
	lines := strings.Split(r.Text, "\n")
	var b strings.Builder
	for i, l := range lines {
		b.WriteString(strconv.Itoa(r.Code))
		if i < len(lines)-1 {
			b.WriteByte('-')
		} else {
			b.WriteByte(' ')
		}
		if enhanced && r.Enh != "" {
			b.WriteString(r.Enh)
			if l != "" {
				b.WriteByte(' ')
			}
		}
		b.WriteString(l)
		if !enhanced && r.Enh != "" && r.Code >= 400 && i == len(lines)-1 {
			b.WriteString(" (#" + r.Enh + ")")
		}
		b.WriteString("\r\n")
	}
	return b.String()
}

// String is the reply as a HELO client sees it, without the line ending; for logs.
func (r Reply) String() string {
	return strings.ReplaceAll(strings.TrimSuffix(r.render(false), "\r\n"), "\r\n", " / ")
}

// Permanent reports whether the reply is a 5xx.
func (r Reply) Permanent() bool { return r.Code >= 500 }

// qmail-smtpd's replies, texts kept as qmail writes them.
var (
	replyOK            = Reply{250, "2.0.0", "ok"}
	replyMailOK        = Reply{250, "2.1.0", "ok"}
	replyRcptOK        = Reply{250, "2.1.5", "ok"}
	replyFlushed       = Reply{250, "2.0.0", "flushed"}
	replyGoAhead       = Reply{354, "", "go ahead"}
	replyVrfy          = Reply{252, "2.5.2", "send some mail, i'll try my best"}
	replyHelp          = Reply{214, "2.0.0", "notqmail home page: https://notqmail.org"}
	replyUnimplemented = Reply{502, "5.5.1", "unimplemented"}
	replyWantMail      = Reply{503, "5.5.1", "MAIL first"}
	replyWantRcpt      = Reply{503, "5.5.1", "RCPT first"}
	replyNested        = Reply{503, "5.5.1", "nested MAIL command"}
	replySyntax        = Reply{555, "5.5.4", "syntax error"}
	replyArgSyntax     = Reply{501, "5.5.4", "syntax error in parameters"}
	replyBadParam      = Reply{555, "5.5.4", "unsupported parameter"}
	replyBMF           = Reply{553, "5.7.1", "sorry, your envelope sender is in my badmailfrom list"}
	replyBRT           = Reply{553, "5.7.1", "sorry, your envelope recipient is in my badrcptto list"}
	replyNoRelay       = Reply{553, "5.7.1", "sorry, that domain isn't in my list of allowed rcpthosts"}
	replyRelayForm     = Reply{553, "5.7.1", "sorry, that address routes through a domain that isn't in my list of allowed rcpthosts"}
	replyNeedUTF8      = Reply{553, "5.6.7", "sorry, a non-ASCII address needs the SMTPUTF8 parameter"}
	replyTooBig        = Reply{552, "5.3.4", "sorry, that message size exceeds my databytes limit"}
	replyHeaderTooBig  = Reply{552, "5.3.4", "sorry, that message header is too large"}
	replyHops          = Reply{554, "5.4.6", "too many hops, this message is looping"}
	replyTooManyRcpts  = Reply{452, "4.5.3", "too many recipients"}
	replyTimeout       = Reply{451, "4.4.2", "timeout"}
	replyControls      = Reply{421, "4.3.0", "unable to read controls"}
	replyQueueFailed   = Reply{451, "4.3.0", "qqt failure"}
	replyLineTooLong   = Reply{500, "5.5.2", "line too long"}
	replyTooManyErrors = Reply{421, "4.7.0", "too many errors, closing connection"}
	replyBareCommand   = Reply{421, "4.5.2", "bare LF or CR in command; lines must end with CRLF, see https://cr.yp.to/docs/smtplf.html"}
	replyBareData      = Reply{451, "4.5.2", "bare LF or CR in message; lines must end with CRLF, see https://cr.yp.to/docs/smtplf.html"}
	replyBadUTF8       = Reply{553, "5.6.7", "sorry, that address is not valid UTF-8"}
	replyCheckFailed   = Reply{451, "4.3.0", "unable to check recipient"}
	replyNoMailbox     = Reply{550, "5.1.1", "sorry, no mailbox here by that name"}
)
