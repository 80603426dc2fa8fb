// Package inject is qmail-inject: it reads a message, completes and rewrites its header
// as qmail-inject does (see qmail-header(5)), works out the envelope, and hands the
// message to qmail-queue.
package inject

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/mailaddr"
)

// lineLen is where rewritten address fields are folded.
const lineLen = 80

// Bounds on what is held in memory: the header is kept whole (qmail-inject writes its
// own fields first), the body is streamed.
const (
	MaxFieldBytes  = 1 << 20  // one header field with its continuation lines
	MaxHeaderBytes = 16 << 20 // the whole header
	MaxRecipients  = 100000   // envelope recipients of one message
)

// Error is a failure with qmail-inject's exit code: 100 permanent, 111 temporary.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func perm(format string, a ...any) *Error { return &Error{100, fmt.Sprintf(format, a...)} }
func temp(format string, a ...any) *Error { return &Error{111, fmt.Sprintf(format, a...)} }

// Usage is qmail-inject's usage message.
const Usage = "usage: qmail-inject [ -nNaAhH ] [ -fsender ] [ recip ... ]"

// Queue receives the message and its envelope; *queueclient.Client is one.
type Queue interface {
	io.Writer
	From(sender string)
	To(rcpt string)
	Fail()
	Close() error
}

// Env looks up an environment variable, telling unset from empty (os.LookupEnv).
type Env func(name string) (string, bool)

type strategy int

const (
	recipDefault strategy = iota // -A: arguments if any, else the header
	recipArgs                    // -a
	recipHeader                  // -h
	recipBoth                    // -H
)

// Injector is one run of qmail-inject, set up from its arguments, environment and
// control files.
type Injector struct {
	// From QMAILINJECT.
	nameComment, deleteSender, deleteFrom, deleteMessageID, verpRecip, verpMess bool

	mailHost, mailRHost   *string // nil: not set
	mailUser, mailRUser   string
	fullName              *string
	defaultDomain         []mailaddr.Token // ".domain"
	defaultHost           []mailaddr.Token // "@host"
	plusDomain            []mailaddr.Token // ".domain"
	idHost                string
	mft                   map[string]bool // QMAILMFTFILE's lists, lowercased; nil: none
	print                 bool            // -n
	rcptHeader            bool            // take recipients from the header
	sender                string
	senderSet             bool
	args                  []string // recipients from the command line
	now                   time.Time
	pid                   int
	seen                  [numFields]bool
	saved                 []string // header fields kept, rewritten
	headerBytes           int
	hrList, hrrList, tocc []string // recipients from To/Cc/Bcc/Apparently-To, Resent-*, To/Cc
}

// New sets up a run from the command-line arguments (after the program name), the
// environment and the control directory.
func New(args []string, env Env, ctl control.Dir) (*Injector, error) {
	ij := &Injector{now: time.Now(), pid: os.Getpid()}
	if env == nil {
		env = os.LookupEnv
	}
	get := func(names ...string) *string {
		for _, n := range names {
			if v, ok := env(n); ok {
				return &v
			}
		}
		return nil
	}
	if opts := get("QMAILINJECT"); opts != nil {
		for _, c := range *opts {
			switch c {
			case 'c':
				ij.nameComment = true
			case 's':
				ij.deleteSender = true
			case 'f':
				ij.deleteFrom = true
			case 'i':
				ij.deleteMessageID = true
			case 'r':
				ij.verpRecip = true
			case 'm':
				ij.verpMess = true
			}
		}
	}
	ij.mailHost = get("QMAILHOST", "MAILHOST")
	ij.mailRHost = get("QMAILSHOST")
	if ij.mailRHost == nil {
		ij.mailRHost = ij.mailHost
	}
	ij.mailUser = "anonymous"
	if u := get("QMAILUSER", "MAILUSER", "USER", "LOGNAME"); u != nil {
		ij.mailUser = *u
	}
	ij.mailRUser = ij.mailUser
	if u := get("QMAILSUSER"); u != nil {
		ij.mailRUser = *u
	}
	ij.fullName = get("QMAILNAME", "MAILNAME", "NAME")

	if f := get("QMAILMFTFILE"); f != nil {
		if err := ij.readMFT(*f); err != nil {
			return nil, err
		}
	}
	if err := ij.controls(ctl, get); err != nil {
		return nil, err
	}
	if err := ij.options(args); err != nil {
		return nil, err
	}
	return ij, nil
}

// readMFT reads the mailing lists for which Mail-Followup-To is added. A missing file
// means none.
func (ij *Injector) readMFT(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return temp("unable to read %s: %v", path, err)
	}
	ij.mft = map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimRight(l, " \t\r")
		if l != "" && l[0] != '#' {
			ij.mft[strings.ToLower(l)] = true
		}
	}
	return nil
}

func (ij *Injector) controls(ctl control.Dir, get func(...string) *string) error {
	value := func(file, envName string) (string, error) {
		if v := get(envName); v != nil {
			return *v, nil
		}
		v, err := ctl.LineOrMe(file, file)
		if err != nil {
			return "", temp("%v", err)
		}
		return v, nil
	}
	tokens := func(file, envName, prefix string) ([]mailaddr.Token, error) {
		v, err := value(file, envName)
		if err != nil {
			return nil, err
		}
		t, err := mailaddr.Tokenize(prefix + v)
		if err != nil {
			return nil, perm("unable to parse this line:\n%s%s", prefix, v)
		}
		return t, nil
	}
	var err error
	if ij.defaultDomain, err = tokens("defaultdomain", "QMAILDEFAULTDOMAIN", "."); err != nil {
		return err
	}
	if ij.defaultHost, err = tokens("defaulthost", "QMAILDEFAULTHOST", "@"); err != nil {
		return err
	}
	if ij.plusDomain, err = tokens("plusdomain", "QMAILPLUSDOMAIN", "."); err != nil {
		return err
	}
	ij.idHost, err = value("idhost", "QMAILIDHOST")
	return err
}

// options parses qmail-inject's flags (getopt "aAhHnNf:").
func (ij *Injector) options(args []string) error {
	strat := recipDefault
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		for j := 1; j < len(a); j++ {
			switch a[j] {
			case 'a':
				strat = recipArgs
			case 'A':
				strat = recipDefault
			case 'h':
				strat = recipHeader
			case 'H':
				strat = recipBoth
			case 'n':
				ij.print = true
			case 'N':
				ij.print = false
			case 'f':
				s := a[j+1:]
				if s == "" {
					if i+1 >= len(args) {
						return perm("option -f needs an argument; %s", Usage)
					}
					i++
					s = args[i]
				}
				if err := ij.setSender(s); err != nil {
					return err
				}
				j = len(a)
			default:
				return perm("unknown option -%c; %s", a[j], Usage)
			}
		}
	}
	rest := args[i:]
	if strat == recipDefault {
		strat = recipHeader
		if len(rest) > 0 {
			strat = recipArgs
		}
	}
	if strat != recipHeader {
		for _, r := range rest {
			if err := ij.addArgRecipient(r); err != nil {
				return err
			}
		}
	}
	ij.rcptHeader = strat != recipArgs
	return nil
}

// setSender handles -f: the address is rewritten like any other.
func (ij *Injector) setSender(s string) error {
	q := mailaddr.QuoteAddr(s)
	toks, err := mailaddr.Tokenize(q)
	if err != nil {
		return perm("unable to parse this line:\n%s", q)
	}
	ij.sender = mailaddr.Unquote(ij.rewrite(toks))
	ij.senderSet = true
	return nil
}

func (ij *Injector) addArgRecipient(r string) error {
	toks, err := mailaddr.Tokenize(mailaddr.QuoteAddr(r))
	if err != nil {
		return perm("unable to parse address: %s", r)
	}
	ij.args = append(ij.args, mailaddr.Unquote(ij.rewrite(toks)))
	return nil
}

// Sender returns the envelope sender as it stands (after -f, or after Run).
func (ij *Injector) Sender() string { return ij.sender }

// Recipients returns the envelope recipients; complete after the header is read.
func (ij *Injector) Recipients() []string {
	r := append([]string(nil), ij.args...)
	if ij.rcptHeader {
		if ij.resent() {
			r = append(r, ij.hrrList...)
		} else {
			r = append(r, ij.hrList...)
		}
	}
	return r
}

func (ij *Injector) resent() bool {
	s := &ij.seen
	return s[fResentSender] || s[fResentFrom] || s[fResentReplyTo] || s[fResentTo] ||
		s[fResentCc] || s[fResentBcc] || s[fResentDate] || s[fResentMessageID]
}

// Run reads the message from in and queues it through open, or, with -n, writes it
// to out preceded by its Return-Path.
func (ij *Injector) Run(in io.Reader, open func() (Queue, error), out io.Writer) error {
	r := bufio.NewReaderSize(in, 64*1024)
	var w io.Writer
	var q Queue
	start := func() error {
		if err := ij.finishHeader(); err != nil {
			return err
		}
		if ij.print {
			w = bufio.NewWriter(out)
		} else {
			rcpts := ij.Recipients()
			if len(rcpts) == 0 {
				// qmail would queue a message nobody gets; say so instead.
				return perm("no recipients: give them as arguments or in To, Cc or Bcc")
			}
			if len(rcpts) > MaxRecipients {
				return perm("more than %d recipients", MaxRecipients)
			}
			// A NUL would end an envelope record early; qmail-queue cannot carry it.
			for _, a := range append(rcpts, ij.sender) {
				if strings.IndexByte(a, 0) >= 0 {
					return perm("address contains a NUL byte: %q", a)
				}
			}
			opened, err := open()
			if err != nil {
				return temp("unable to run qmail-queue: %v", err)
			}
			q = opened
			w = bufio.NewWriterSize(q, 64*1024)
		}
		return ij.writeHeader(w)
	}
	var werr error // a write to the output or to qmail-queue failed
	err := ij.readMessage(r, start, func(p []byte) error {
		if _, err := w.Write(p); err != nil {
			werr = err
			return err
		}
		return nil
	})
	if err == nil {
		if err = w.(*bufio.Writer).Flush(); err != nil {
			werr = err
		}
	}
	if q == nil {
		if werr != nil {
			return temp("unable to write output: %v", werr)
		}
		return err
	}
	if err != nil {
		q.Fail()
		cerr := q.Close()
		if werr != nil && cerr != nil {
			// qmail-queue stopped reading: its exit status says why.
			return queueError(cerr)
		}
		if werr != nil {
			return temp("unable to write to qmail-queue: %v", werr)
		}
		return err
	}
	q.From(ij.sender)
	for _, rc := range ij.Recipients() {
		q.To(rc)
	}
	if err := q.Close(); err != nil {
		return queueError(err)
	}
	return nil
}

// queueError turns qmail-queue's refusal into an exit code: 100 when permanent.
func queueError(err error) *Error {
	code := 111
	if p, ok := err.(interface{ Status() string }); ok && strings.HasPrefix(p.Status(), "D") {
		code = 100
	}
	return &Error{code, err.Error()}
}

// readMessage splits the input into header fields and body as qmail's headerbody
// does: a "From " line in the header becomes an MBOX-Line field; a line that is not a
// field (nor a continuation) ends the header, and a blank line is inserted before it.
// start runs once the header is complete, then body receives the rest.
func (ij *Injector) readMessage(r *bufio.Reader, start func() error, body func([]byte) error) error {
	var field strings.Builder
	have := false
	flush := func() error {
		if !have {
			return nil
		}
		have = false
		return ij.doField(field.String())
	}
	read := 0 // header bytes read, dropped fields included
	for {
		line, eof, err := readLine(r, MaxFieldBytes)
		if err != nil {
			return err
		}
		if read += len(line); read > MaxHeaderBytes+MaxFieldBytes {
			return perm("header longer than %d bytes", MaxHeaderBytes)
		}
		if eof && line == "" {
			if err := flush(); err != nil {
				return err
			}
			return start() // no body
		}
		if have && (line[0] == ' ' || line[0] == '\t') {
			if field.Len()+len(line) > MaxFieldBytes {
				return perm("header field longer than %d bytes", MaxFieldBytes)
			}
			field.WriteString(line)
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		if line == "\n" {
			if err := start(); err != nil {
				return err
			}
			if err := body([]byte(line)); err != nil {
				return err
			}
			break
		}
		field.Reset()
		switch {
		case strings.HasPrefix(line, "From "):
			field.WriteString("MBOX-Line: " + line)
		case validField(line):
			field.WriteString(line)
		default:
			if err := start(); err != nil {
				return err
			}
			if err := body([]byte("\n" + line)); err != nil {
				return err
			}
			return copyBody(r, body)
		}
		have = true
	}
	return copyBody(r, body)
}

// readLine reads one line ending in "\n" (one is added to a last line without it);
// eof is true at the end of input. A header line over max bytes is an error.
func readLine(r *bufio.Reader, max int) (line string, eof bool, err error) {
	var b []byte
	for {
		frag, err := r.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > max {
			return "", false, perm("header line longer than %d bytes", max)
		}
		switch {
		case err == nil:
			return string(b), false, nil
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			if len(b) > 0 {
				return string(b) + "\n", true, nil
			}
			return "", true, nil
		default:
			return "", false, temp("read error: %v", err)
		}
	}
}

// copyBody streams the rest of the input, adding a final newline if it lacks one.
func copyBody(r *bufio.Reader, body func([]byte) error) error {
	buf := make([]byte, 64*1024)
	var last byte = '\n'
	for {
		n, err := r.Read(buf)
		if n > 0 {
			last = buf[n-1]
			if werr := body(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return temp("read error: %v", err)
		}
	}
	if last != '\n' {
		return body([]byte("\n"))
	}
	return nil
}

// doField rewrites one header field and keeps it, or drops it.
func (ij *Injector) doField(h string) error {
	t := fieldType(h)
	if (ij.deleteFrom && t == fFrom) || (ij.deleteMessageID && t == fMessageID) ||
		(ij.deleteSender && t == fReturnPath) {
		return nil
	}
	if t != fUnknown {
		ij.seen[t] = true
	} else if !validField(h) {
		return perm("invalid header field: %s", h)
	}
	var rw mailaddr.Rewrite
	mayFail := false
	switch t {
	case fTo, fCc:
		rw, mayFail = func(a []mailaddr.Token) []mailaddr.Token {
			a = ij.rewrite(a)
			ij.hrList = append(ij.hrList, mailaddr.Unquote(a))
			ij.tocc = append(ij.tocc, mailaddr.Unquote(a))
			return a
		}, true
	case fBcc, fApparentlyTo:
		rw, mayFail = ij.collect(&ij.hrList), true
	case fResentTo, fResentCc, fResentBcc:
		rw, mayFail = ij.collect(&ij.hrrList), true
	case fReturnPath:
		rw = ij.rewriteReturn
	case fSender, fFrom, fReplyTo, fReturnReceiptTo, fErrorsTo, fResentSender, fResentFrom, fResentReplyTo:
		rw = ij.rewrite
	}
	if rw != nil {
		out, err := ij.addrList(h, rw)
		switch {
		case err == nil:
			h = out
		case !mayFail:
			return perm("unable to parse this line:\n%s", h)
		}
	}
	// Checked field by field, so that Bcc lines (which are not kept) cannot pile up
	// recipients without bound.
	if len(ij.args)+len(ij.hrList)+len(ij.hrrList) > MaxRecipients {
		return perm("more than %d recipients", MaxRecipients)
	}
	switch t {
	case fBcc, fResentBcc, fReturnPath, fContentLength:
		return nil
	}
	ij.headerBytes += len(h)
	if ij.headerBytes > MaxHeaderBytes {
		return perm("header longer than %d bytes", MaxHeaderBytes)
	}
	ij.saved = append(ij.saved, h)
	return nil
}

func (ij *Injector) addrList(h string, rw mailaddr.Rewrite) (string, error) {
	toks, err := mailaddr.Tokenize(h)
	if err != nil {
		return "", err
	}
	out, err := mailaddr.AddrList(toks, rw)
	if err != nil {
		return "", err
	}
	return mailaddr.Unparse(out, lineLen), nil
}

func (ij *Injector) collect(list *[]string) mailaddr.Rewrite {
	return func(a []mailaddr.Token) []mailaddr.Token {
		a = ij.rewrite(a)
		*list = append(*list, mailaddr.Unquote(a))
		return a
	}
}

// rewriteReturn rewrites a Return-Path address and takes it as the envelope sender
// unless one is set already.
func (ij *Injector) rewriteReturn(a []mailaddr.Token) []mailaddr.Token {
	a = ij.rewrite(a)
	if !ij.senderSet {
		ij.sender = mailaddr.Unquote(a)
		if ij.verpRecip {
			ij.sender += "-@[]"
		}
		ij.senderSet = true
	}
	return a
}

// rewrite completes an address as qmail-inject does: source routes are dropped, a
// stray trailing dot or '@' removed, defaulthost added to an address without '@',
// plusdomain to a host ending in '+', defaultdomain to a host without a dot. <> and
// user@[] are left alone.
func (ij *Injector) rewrite(a []mailaddr.Token) []mailaddr.Token {
	n := len(a)
	if n == 0 {
		return a
	}
	if n >= 2 && a[n-1].Kind == mailaddr.Literal && a[n-1].Text == "" && a[n-2].Kind == mailaddr.At {
		return a
	}
	a = append([]mailaddr.Token(nil), a...)
	if a[0].Kind == mailaddr.At { // <@route,@route:user@host>
		i := 0
		for i < len(a) && a[i].Kind != mailaddr.Colon {
			i++
		}
		if i == len(a) {
			return a[:0]
		}
		a = a[i+1:]
		if len(a) == 0 {
			return a
		}
	}
	if a[len(a)-1].Kind == mailaddr.Dot {
		if a = a[:len(a)-1]; len(a) == 0 {
			return a
		}
	}
	if a[len(a)-1].Kind == mailaddr.At {
		if a = a[:len(a)-1]; len(a) == 0 {
			return a
		}
	}
	hasAt := false
	for _, t := range a {
		if t.Kind == mailaddr.At {
			hasAt = true
		}
	}
	if !hasAt {
		a = append(a, ij.defaultHost...)
	}
	if last := &a[len(a)-1]; last.Kind == mailaddr.Atom && strings.HasSuffix(last.Text, "+") {
		last.Text = strings.TrimSuffix(last.Text, "+")
		a = append(a, ij.plusDomain...)
	}
	// The host part: everything after the last '@'.
	for i := len(a) - 1; i >= 0 && a[i].Kind != mailaddr.At; i-- {
		if a[i].Kind == mailaddr.Dot || a[i].Kind == mailaddr.Literal {
			return a
		}
	}
	return append(a, ij.defaultDomain...)
}

// finishHeader settles the envelope sender once the header has been read.
func (ij *Injector) finishHeader() error {
	if ij.senderSet {
		return nil
	}
	user := ij.mailRUser
	if ij.verpMess {
		user += "-" + strconv.FormatInt(ij.now.Unix(), 10) + "." + strconv.Itoa(ij.pid)
	}
	if ij.verpRecip {
		user += "-"
	}
	toks := []mailaddr.Token{{Kind: mailaddr.Atom, Text: "Return-Path"}, {Kind: mailaddr.Colon}, {Kind: mailaddr.Quote, Text: user}}
	if ij.mailRHost != nil {
		toks = append(toks, mailaddr.Token{Kind: mailaddr.At}, mailaddr.Token{Kind: mailaddr.Atom, Text: *ij.mailRHost})
	}
	// Through text and back, as qmail does, so the host is tokenized like any other.
	line := mailaddr.Unparse(toks, lineLen)
	if _, err := ij.addrList(line, ij.rewriteReturn); err != nil {
		return perm("unable to parse this line:\n%s", line)
	}
	return nil
}

// defaultFrom builds the From field qmail-inject adds: "Name" <user@host>, or
// user@host (Name) with QMAILINJECT=c.
func (ij *Injector) defaultFrom() (string, error) {
	toks := []mailaddr.Token{{Kind: mailaddr.Atom, Text: "From"}, {Kind: mailaddr.Colon}}
	angle := ij.fullName != nil && !ij.nameComment
	if angle {
		toks = append(toks, mailaddr.Token{Kind: mailaddr.Quote, Text: *ij.fullName}, mailaddr.Token{Kind: mailaddr.Left})
	}
	kind := mailaddr.Atom
	if mailaddr.QuoteNeeded(ij.mailUser) {
		kind = mailaddr.Quote
	}
	toks = append(toks, mailaddr.Token{Kind: kind, Text: ij.mailUser})
	if ij.mailHost != nil {
		toks = append(toks, mailaddr.Token{Kind: mailaddr.At}, mailaddr.Token{Kind: mailaddr.Atom, Text: *ij.mailHost})
	}
	if angle {
		toks = append(toks, mailaddr.Token{Kind: mailaddr.Right})
	}
	if ij.fullName != nil && ij.nameComment {
		toks = append(toks, mailaddr.Token{Kind: mailaddr.Comment, Text: *ij.fullName})
	}
	line := mailaddr.Unparse(toks, lineLen)
	out, err := ij.addrList(line, ij.rewrite)
	if err != nil {
		return "", perm("unable to parse this line:\n%s", line)
	}
	return out, nil
}

// dateField is "Date: 26 Sep 1995 04:46:53 -0000\n", in UTC.
func dateField(t time.Time) string {
	return "Date: " + t.UTC().Format("2 Jan 2006 15:04:05") + " -0000\n"
}

func (ij *Injector) messageIDField() string {
	return fmt.Sprintf("Message-ID: <%s.%d.qmail@%s>\n", ij.now.UTC().Format("20060102150405"), ij.pid, ij.idHost)
}

// writeHeader writes the Return-Path (with -n), the fields qmail-inject adds, then
// the kept fields.
func (ij *Injector) writeHeader(w io.Writer) error {
	var b strings.Builder
	if ij.print {
		b.WriteString("Return-Path: <" + mailaddr.QuoteAddr(ij.sender) + ">\n")
	}
	prefix, s := "", &ij.seen
	date, msgid, from, to, cc := fDate, fMessageID, fFrom, fTo, fCc
	if ij.resent() {
		prefix = "Resent-"
		date, msgid, from, to, cc = fResentDate, fResentMessageID, fResentFrom, fResentTo, fResentCc
	}
	if !s[date] {
		b.WriteString(prefix + dateField(ij.now))
	}
	if !s[msgid] {
		b.WriteString(prefix + ij.messageIDField())
	}
	if !s[from] {
		f, err := ij.defaultFrom()
		if err != nil {
			return err
		}
		b.WriteString(prefix + f)
	}
	if !s[to] && !s[cc] {
		b.WriteString(prefix + "Cc: recipient list not shown: ;\n")
	}
	if prefix == "" {
		ij.followupTo(&b)
	}
	for _, h := range ij.saved {
		b.WriteString(h)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// followupTo adds Mail-Followup-To when a To or Cc address is one of the mailing lists
// in QMAILMFTFILE and the message has none.
func (ij *Injector) followupTo(b *strings.Builder) {
	if ij.mft == nil || ij.seen[fMailFollowupTo] {
		return
	}
	found := false
	for _, a := range ij.tocc {
		if ij.mft[strings.ToLower(a)] {
			found = true
		}
	}
	if !found {
		return
	}
	b.WriteString("Mail-Followup-To: ")
	for i := len(ij.tocc) - 1; i >= 0; i-- {
		b.WriteString(mailaddr.QuoteAddr(ij.tocc[i]))
		if i > 0 {
			b.WriteString(",\n  ")
		}
	}
	b.WriteString("\n")
}
