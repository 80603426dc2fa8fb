package smtpd

import (
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/dotqmail"
	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/ids"
	"github.com/notqmail/notqmail/src/send"
	"github.com/notqmail/notqmail/src/users"
)

// ValidateControl is the control file that turns on recipient validation at RCPT
// time: one domain per line, ".domain" for its subdomains, "*" for every domain.
// Recipients in those domains that qmail would deliver locally are refused with 550
// when no delivery exists for them; recipients qmail would send on (relay or backup
// MX domains) are never checked. Missing or empty: no validation, as in qmail.
const ValidateControl = "validrcptdomains"

// Validator decides at RCPT time whether a local recipient can be delivered, the way
// qmail-send, qmail-lspawn and qmail-local would decide it later: locals and
// virtualdomains rewriting, then users/cdb, then the passwd database (qmail-getpw's
// rules), then the alias user; and for an address with an extension, the .qmail
// file search.
type Validator struct {
	Domains   []string       // lowercased lines of ValidateControl
	Rewrite   *send.Rewriter // locals, virtualdomains, percenthack, envnoathost
	UsersCDB  string         // users/cdb
	AliasHome string         // the alias user's home
	// Getpw finds a passwd account for a user name (default: os/user).
	Getpw func(name string) (uid int, home string, ok bool)
	Log   func(format string, args ...any)
}

// LoadValidator reads ValidateControl and what the check needs; it returns nil when
// validation is off.
func LoadValidator(ctl control.Dir) (*Validator, error) {
	doms, err := ctl.Strings(ValidateControl)
	if err != nil || len(doms) == 0 {
		return nil, err
	}
	rw, err := send.LoadRewriter(ctl)
	if err != nil {
		return nil, err
	}
	v := &Validator{Rewrite: rw, UsersCDB: home.Path("users", "cdb")}
	for _, d := range doms {
		v.Domains = append(v.Domains, strings.ToLower(d))
	}
	if a, err := ids.User(ids.Alias); err == nil {
		v.AliasHome = a.Home
	}
	return v, nil
}

func (v *Validator) covers(domain string) bool {
	domain = strings.ToLower(domain)
	for _, d := range v.Domains {
		if d == "*" || d == domain || strings.HasPrefix(d, ".") && strings.HasSuffix(domain, d) {
			return true
		}
	}
	return false
}

// Check is a Config.CheckRcpt: nil when addr is deliverable or not ours to judge,
// &replyNoMailbox when qmail-local would bounce it. Anything it cannot read is
// taken as deliverable, so a validation problem never loses mail: qmail-local will
// decide.
func (v *Validator) Check(addr string) error {
	dom := v.Rewrite.EnvNoAtHost
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		dom = addr[at+1:]
	}
	if !v.covers(dom) {
		return nil
	}
	stored, local := v.Rewrite.Rewrite(addr)
	if !local {
		return nil
	}
	lp := stored[:strings.LastIndexByte(stored, '@')]
	a, ok, err := users.Lookup(v.UsersCDB, lp)
	if err != nil {
		v.logf("recipient check: %v; accepting %q", err, addr)
		return nil
	}
	if !ok {
		a, ok = v.getpw(lp)
	}
	if !ok {
		if v.AliasHome == "" {
			return nil
		}
		a = users.Assignment{User: ids.Alias, Home: v.AliasHome, Dash: "-", Ext: lp}
	}
	if a.Ext == "" && a.Dash == "" {
		return nil // the user's own address: defaultdelivery covers a missing .qmail
	}
	_, found, err := dotqmail.Search(a.Home, a.Dash, a.Ext)
	if err != nil {
		v.logf("recipient check: %s in %s; accepting %q", err, a.Home, addr)
		return nil
	}
	if !found && a.Dash == "" {
		return nil
	}
	if !found {
		r := replyNoMailbox
		return &r
	}
	return nil
}

// getpw is qmail-getpw's search: the whole local part, then each prefix ending before
// a '-', lowercased, must name an account with a nonzero uid that owns its home.
func (v *Validator) getpw(local string) (users.Assignment, bool) {
	get := v.Getpw
	if get == nil {
		get = passwd
	}
	for end := len(local); end >= 0; end-- {
		if end < len(local) && local[end] != '-' {
			continue
		}
		name := strings.ToLower(local[:end])
		if name == "" || len(name) >= 32 {
			continue
		}
		if _, h, ok := get(name); ok {
			a := users.Assignment{User: name, Home: h}
			if end < len(local) {
				a.Dash, a.Ext = "-", local[end+1:]
			}
			return a, true
		}
	}
	return users.Assignment{}, false
}

// passwd looks an account up as qmail-getpw accepts it.
func passwd(name string) (int, string, bool) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, "", false
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil || uid == 0 {
		return 0, "", false
	}
	fi, err := os.Stat(u.HomeDir)
	if err != nil {
		return 0, "", false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) != uid {
		return 0, "", false
	}
	return uid, u.HomeDir, true
}

func (v *Validator) logf(format string, args ...any) {
	if v.Log != nil {
		v.Log(format, args...)
	}
}
