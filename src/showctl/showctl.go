// Package showctl prints the qmail configuration the way qmail-showctl does: the
// compiled-in settings, the qmail users' and groups' ids, then every control file with
// its value or its default in qmail's wording, then any file in control/ that nothing
// reads ("I have no idea what this file does.").
//
// The list of control files is control.Files, so a file another program starts reading
// is shown here as soon as it is listed there.
package showctl

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/dotqmail"
	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/ids"
	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/send"
)

// Break is qmail's conf-break, the user-extension delimiter.
const Break = "-"

// Config is what qmail-showctl reports besides the control files.
type Config struct {
	Home       string
	ControlDir string
	Split      int
	UIDs       []int // alias, qmaild, qmaill, root, qmailp, qmailq, qmailr, qmails
	GIDs       []int // nofiles, qmail
}

// userOrder is conf-users' order, with root (the owner of the binaries) fourth.
var userOrder = []string{ids.Alias, ids.Qmaild, ids.Qmaill, "root", ids.Qmailp, ids.Qmailq, ids.Qmailr, ids.Qmails}

// Default gathers the Config of this installation. A missing qmail user or group is an
// error, as it is for qmail-showctl.
func Default() (Config, error) {
	c := Config{Home: home.Dir(), ControlDir: home.Path("control"), Split: queue.Default().Split}
	for _, u := range userOrder {
		a, err := ids.User(u)
		if err != nil {
			return c, err
		}
		c.UIDs = append(c.UIDs, a.UID)
	}
	for _, g := range []string{ids.GroupNofiles, ids.GroupQmail} {
		gid, err := ids.Group(g)
		if err != nil {
			return c, err
		}
		c.GIDs = append(c.GIDs, gid)
	}
	return c, nil
}

// Error is a failure that stops qmail-showctl (exit 111); what was printed so far stays.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

// kind is how a control file is shown.
type kind int

const (
	kindStr kind = iota // first line
	kindInt             // a number
	kindLst             // every line
	kindKey             // key or certificate material: never printed
)

// wording is qmail-showctl's text for one file.
type wording struct {
	kind   kind
	flagMe bool   // str: the default is control/me when that exists
	def    string // the default, as shown after "(Default.) "
	pre    string
	post   string
}

// words holds qmail-showctl's own wording; files without an entry get a plain one.
var words = map[string]wording{
	"badmailfrom":       {kindLst, false, "Any MAIL FROM is allowed.", "", " not accepted in MAIL FROM."},
	"badrcptto":         {kindLst, false, "Any RCPT TO is allowed.", "", " not accepted in RCPT TO."},
	"bouncefrom":        {kindStr, false, "MAILER-DAEMON", "Bounce user name is ", ""},
	"bouncehost":        {kindStr, true, "bouncehost", "Bounce host name is ", ""},
	"concurrencylocal":  {kindInt, false, "10", "Local concurrency is ", ""},
	"concurrencyremote": {kindInt, false, "20", "Remote concurrency is ", ""},
	"databytes":         {kindInt, false, "0", "SMTP DATA limit is ", " bytes"},
	"defaultdomain":     {kindStr, true, "defaultdomain", "Default domain name is ", ""},
	"defaulthost":       {kindStr, true, "defaulthost", "Default host name is ", ""},
	"doublebouncehost":  {kindStr, true, "doublebouncehost", "2B recipient host: ", ""},
	"doublebounceto":    {kindStr, false, "postmaster", "2B recipient user: ", ""},
	"envnoathost":       {kindStr, true, "envnoathost", "Presumed domain name is ", ""},
	"helohost":          {kindStr, true, "helohost", "SMTP client HELO host name is ", ""},
	"idhost":            {kindStr, true, "idhost", "Message-ID host name is ", ""},
	"localiphost":       {kindStr, true, "localiphost", "Local IP address becomes ", ""},
	"locals":            {kindLst, false, "Messages for me are delivered locally.", "Messages for ", " are delivered locally."},
	"me":                {kindStr, false, "undefined! Uh-oh", "My name is ", ""},
	"percenthack":       {kindLst, false, "The percent hack is not allowed.", "The percent hack is allowed for user%host@", "."},
	"plusdomain":        {kindStr, true, "plusdomain", "Plus domain name is ", ""},
	"qmqpservers":       {kindLst, false, "No QMQP servers.", "QMQP server: ", "."},
	"queuelifetime":     {kindInt, false, "604800", "Message lifetime in the queue is ", " seconds"},
	// Without rcpthosts this project refuses every recipient (qmail accepted any).
	"rcpthosts":      {kindLst, false, "SMTP clients may not send messages to any recipient (unless RELAYCLIENT is set).", "SMTP clients may send messages to recipients at ", "."},
	"smtpgreeting":   {kindStr, true, "smtpgreeting", "SMTP greeting: 220 ", ""},
	"smtproutes":     {kindLst, false, "No artificial SMTP routes.", "SMTP route: ", ""},
	"timeoutconnect": {kindInt, false, "60", "SMTP client connection timeout is ", " seconds"},
	"timeoutremote":  {kindInt, false, "1200", "SMTP client data timeout is ", " seconds"},
	"timeoutsmtpd":   {kindInt, false, "1200", "SMTP server data timeout is ", " seconds"},
	"virtualdomains": {kindLst, false, "No virtual domains.", "Virtual domain: ", ""},
}

// Show prints the report for c to w.
func Show(w io.Writer, c Config) error {
	p := &printer{w: w}
	p.printf("qmail home directory: %s.\n", c.Home)
	p.printf("user-ext delimiter: %s.\n", Break)
	p.printf("paternalism (in decimal): %d.\n", dotqmail.Patrn)
	p.printf("silent concurrency limit: %d.\n", send.SpawnLimit)
	p.printf("subdirectory split: %d.\n", c.Split)
	p.printf("user ids: %s.\n", joinInts(c.UIDs))
	p.printf("group ids: %s.\n", joinInts(c.GIDs))

	ents, err := os.ReadDir(c.ControlDir)
	if err != nil {
		p.printf("Oops! Unable to open %s.\n", c.ControlDir)
		return p.fail(&Error{Msg: "unable to open " + c.ControlDir + ": " + errText(err)})
	}
	s := &shower{printer: p, dir: control.Open(c.ControlDir)}
	me, meOK, err := s.dir.Line("me")
	if err != nil {
		p.printf("Oops! Trouble reading control/me.\n")
		return p.fail(err)
	}
	s.me, s.meOK = me, meOK

	for _, name := range control.Names() {
		switch name {
		case "morercpthosts", "morercpthosts.cdb":
			continue // shown with rcpthosts, as qmail does
		case "rcpthosts":
			s.rcpthosts()
		default:
			s.file(name)
		}
	}

	var unknown []string
	for _, e := range ents {
		if !control.Known(e.Name()) {
			unknown = append(unknown, e.Name())
		}
	}
	sort.Strings(unknown)
	for _, n := range unknown {
		p.printf("\n%s: I have no idea what this file does.\n", safe(n))
	}
	return p.err
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *printer) fail(err error) error {
	if p.err != nil {
		return p.err
	}
	return err
}

type shower struct {
	*printer
	dir  control.Dir
	me   string
	meOK bool
}

// exists reports whether a control file exists; an error other than "missing" counts
// as existing, so reading it reports the trouble.
func (s *shower) exists(name string) bool {
	_, err := os.Stat(s.dir.File(name))
	return !errors.Is(err, fs.ErrNotExist)
}

func (s *shower) file(name string) {
	wd, ok := words[name]
	if !ok {
		// A file qmail-showctl never knew: its default in control.Files' words, and its
		// lines as they are, except key material, which must not end up in a report.
		wd = wording{kind: kindLst, def: fileInfo(name).Default + "."}
	}
	if control.Secret(name) {
		wd.kind = kindKey
	}
	switch wd.kind {
	case kindKey:
		s.showKey(name, wd)
	case kindInt:
		s.showInt(name, wd)
	case kindLst:
		s.showList(name, wd)
	default:
		s.showStr(name, wd)
	}
}

func (s *shower) trouble(err error) {
	s.printf("Oops! Trouble reading this file: %s.\n", safe(errText(err)))
}

func (s *shower) showInt(name string, wd wording) {
	s.printf("\n%s: ", name)
	if !s.exists(name) {
		s.printf("(Default.) %s%s%s.\n", wd.pre, wd.def, wd.post)
		return
	}
	n, err := s.dir.Int(name, 0)
	if err != nil {
		s.trouble(err)
		return
	}
	s.printf("%s%d%s.\n", wd.pre, n, wd.post)
}

func (s *shower) showStr(name string, wd wording) {
	s.printf("\n%s: ", name)
	v, ok, err := s.dir.Line(name)
	if err != nil {
		s.trouble(err)
		return
	}
	if !ok {
		v = wd.def
		if wd.flagMe && s.meOK {
			v = s.me
		}
		s.printf("(Default.) ")
	}
	s.printf("%s%s%s.\n", wd.pre, safe(v), wd.post)
}

// showList prints a list file; it reports whether the file exists (and was readable).
func (s *shower) showList(name string, wd wording) bool {
	s.printf("\n%s: ", name)
	if !s.exists(name) {
		s.printf("(Default.) %s\n", wd.def)
		return false
	}
	lines, err := s.dir.Strings(name)
	if err != nil {
		s.trouble(err)
		return false
	}
	s.printf("\n")
	for _, l := range lines {
		s.printf("%s%s%s\n", wd.pre, safe(l), wd.post)
	}
	return true
}

func (s *shower) showKey(name string, wd wording) {
	s.printf("\n%s: ", name)
	if !s.exists(name) {
		s.printf("(Default.) %s\n", wd.def)
		return
	}
	if fi, err := os.Stat(s.dir.File(name)); err == nil && fi.IsDir() {
		s.printf("Present (a directory); its contents are not shown.\n")
		return
	}
	s.printf("Present; its contents are not shown.\n")
}

func (s *shower) rcpthosts() {
	if s.showList("rcpthosts", words["rcpthosts"]) {
		s.showList("morercpthosts", wording{kindLst, false, "No effect.", "SMTP clients may send messages to recipients at ", "."})
	} else {
		s.showList("morercpthosts", wording{kindLst, false, "No rcpthosts; morercpthosts is irrelevant.", "No rcpthosts; doesn't matter that morercpthosts has ", "."})
	}
	s.printf("\nmorercpthosts.cdb: ")
	src, srcErr := os.Stat(s.dir.File("morercpthosts"))
	cdb, cdbErr := os.Stat(s.dir.File("morercpthosts.cdb"))
	switch {
	case srcErr != nil && cdbErr != nil:
		s.printf("(Default.) No effect.\n")
	case srcErr != nil:
		s.printf("Oops! morercpthosts.cdb exists but morercpthosts doesn't.\n")
	case cdbErr != nil:
		s.printf("Oops! morercpthosts exists but morercpthosts.cdb doesn't.\n")
	case src.ModTime().Unix() > cdb.ModTime().Unix():
		s.printf("Oops! morercpthosts.cdb is older than morercpthosts.\n")
	default:
		s.printf("Modified recently enough; hopefully up to date.\n")
	}
}

func fileInfo(name string) control.FileInfo {
	for _, f := range control.Files {
		if f.Name == name {
			return f
		}
	}
	return control.FileInfo{Name: name}
}

// safe replaces bytes outside printable ASCII with '?', as qmail-showctl does, so a
// hostile control file cannot send escape sequences to the terminal.
func safe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 32 || c > 126 {
			b[i] = '?'
		}
	}
	return string(b)
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
