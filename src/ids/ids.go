// Package ids looks up qmail's users and groups at run time, as qmail 1.07 and later do.
//
// In sandbox mode (see package home) every qmail user and group is the sandbox owner's
// uid and gid, so the programs run unprivileged with unchanged code paths.
package ids

import (
	"fmt"
	"os/user"
	"strconv"

	"github.com/notqmail/notqmail/src/home"
)

// qmail's users (conf-users) and groups (conf-groups).
const (
	Alias  = "alias"
	Qmaild = "qmaild"
	Qmaill = "qmaill"
	Qmailp = "qmailp"
	Qmailq = "qmailq"
	Qmailr = "qmailr"
	Qmails = "qmails"

	GroupQmail   = "qmail"
	GroupNofiles = "nofiles"
)

// Users lists qmail's users in conf-users order, without root.
var Users = []string{Alias, Qmaild, Qmaill, Qmailp, Qmailq, Qmailr, Qmails}

// Groups lists qmail's groups.
var Groups = []string{GroupQmail, GroupNofiles}

// Account is a user's ids and home directory.
type Account struct {
	Name string
	UID  int
	GID  int
	Home string
}

// User returns a qmail user's account. In sandbox mode it is the sandbox owner's ids,
// with the alias user's home under QMAILHOME/alias.
func User(name string) (Account, error) {
	if o, ok := home.Sandbox(); ok {
		h := home.Dir()
		if name == Alias {
			h = home.Path("alias")
		}
		return Account{Name: name, UID: o.UID, GID: o.GID, Home: h}, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return Account{}, fmt.Errorf("unable to find user %s: %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return Account{}, fmt.Errorf("user %s has non-numeric ids %s:%s", name, u.Uid, u.Gid)
	}
	return Account{Name: name, UID: uid, GID: gid, Home: u.HomeDir}, nil
}

// Group returns a qmail group's gid; in sandbox mode, the sandbox owner's gid.
func Group(name string) (int, error) {
	if o, ok := home.Sandbox(); ok {
		return o.GID, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("unable to find group %s: %w", name, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("group %s has non-numeric gid %s", name, g.Gid)
	}
	return gid, nil
}
