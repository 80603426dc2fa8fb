package inject

// Header fields qmail-inject knows (qmail's hfield table).
const (
	fUnknown = iota
	fSender
	fFrom
	fReplyTo
	fTo
	fCc
	fBcc
	fDate
	fMessageID
	fSubject
	fResentSender
	fResentFrom
	fResentReplyTo
	fResentTo
	fResentCc
	fResentBcc
	fResentDate
	fResentMessageID
	fReturnReceiptTo
	fErrorsTo
	fApparentlyTo
	fReceived
	fReturnPath
	fDeliveredTo
	fContentLength
	fContentType
	fContentTransferEncoding
	fNoticeRequestedUponDeliveryTo
	fMailFollowupTo
	numFields
)

var fieldNames = [numFields]string{
	"", "sender", "from", "reply-to", "to", "cc", "bcc", "date", "message-id", "subject",
	"resent-sender", "resent-from", "resent-reply-to", "resent-to", "resent-cc",
	"resent-bcc", "resent-date", "resent-message-id", "return-receipt-to", "errors-to",
	"apparently-to", "received", "return-path", "delivered-to", "content-length",
	"content-type", "content-transfer-encoding", "notice-requested-upon-delivery-to",
	"mail-followup-to",
}

// matchName reports whether field line h starts with name (lowercase), in any case
// except that '-' must be literal, followed by optional blanks and a colon.
func matchName(h, name string) bool {
	if len(h) < len(name) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c, n := h[i], name[i]
		if c != n && (n == '-' || n < 'a' || n > 'z' || c != n-32) {
			return false
		}
	}
	for i := len(name); i < len(h); i++ {
		switch h[i] {
		case ':':
			return true
		case ' ', '\t':
		default:
			return false
		}
	}
	return false
}

// fieldType returns which known field h is, or fUnknown.
func fieldType(h string) int {
	for t := 1; t < numFields; t++ {
		if matchName(h, fieldNames[t]) {
			return t
		}
	}
	return fUnknown
}

// validField reports whether h starts a header field: a non-empty name of printable
// characters without blanks, optional blanks, and a colon.
func validField(h string) bool {
	j := 0
	for j < len(h) && h[j] != ':' {
		j++
	}
	if j >= len(h) {
		return false
	}
	for j > 0 && (h[j-1] == ' ' || h[j-1] == '\t') {
		j--
	}
	if j == 0 {
		return false
	}
	for i := 0; i < j; i++ {
		if h[i] <= 32 || h[i] >= 127 {
			return false
		}
	}
	return true
}
