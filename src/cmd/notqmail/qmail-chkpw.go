package main

import (
	"os"

	"github.com/notqmail/notqmail/src/chkpw"
	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/ids"
)

func init() {
	register("qmail-chkpw", chkpwMain)
	register("qmail-chkpw-passwd", chkpwPasswdMain)
}

// chkpwMain is a checkpassword program: user and password on descriptor 3,
// checked against control/passwords.
func chkpwMain(args []string) int {
	fd3 := os.NewFile(3, "fd3")
	if fd3 == nil {
		os.Stderr.WriteString("qmail-chkpw: descriptor 3 is not open\n")
		return chkpw.ExitMisuse
	}
	return chkpw.Check(args, chkpw.CheckOptions{
		File: control.Default().File("passwords"), Input: fd3, Stderr: os.Stderr, Sandbox: home.InSandbox(),
	})
}

// chkpwPasswdMain manages control/passwords. A file it creates belongs to root and
// to the group of qmaild, who runs qmail-smtpd and so qmail-chkpw, mode 0640:
// qmaild reads it, and only root may change it, since qmail-chkpw as root (under
// qmail-popup) obeys its account lines.
func chkpwPasswdMain(args []string) int {
	uid, gid := -1, -1
	if u, err := ids.User(ids.Qmaild); err == nil && !home.InSandbox() {
		uid, gid = 0, u.GID
	}
	return chkpw.Passwd(args, chkpw.PasswdOptions{
		File: control.Default().File("passwords"), Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		OwnerUID: uid, OwnerG: gid,
	})
}
