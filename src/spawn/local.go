package spawn

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/notqmail/notqmail/src/users"
)

// qmail-lspawn's private exit codes (qmail's qlx.h). qmail-local uses 0, 100 and 111;
// these mark failures on the way to it, and map to fixed report texts.
const (
	QLXUsage    = 112
	QLXBug      = 101
	QLXRoot     = 113
	QLXNFS      = 115
	QLXNoAlias  = 116
	QLXCDB      = 117
	QLXSys      = 118
	QLXNoMem    = 119
	QLXExecSoft = 120
	QLXExecPW   = 121
	QLXExecHard = 126
)

// LocalReport is qmail-lspawn's report for qmail-local's (or its own) exit: crashed
// means the child died from a signal; output is what qmail-local wrote.
func LocalReport(code int, crashed bool, output []byte) []byte {
	if crashed {
		return []byte("Zqmail-local crashed.\n")
	}
	fixed := map[int]string{
		QLXCDB:      "ZTrouble reading users/cdb in qmail-lspawn.\n",
		QLXNoMem:    "ZOut of memory in qmail-lspawn.\n",
		QLXSys:      "ZTemporary failure in qmail-lspawn.\n",
		QLXNoAlias:  "ZUnable to find alias user!\n",
		QLXRoot:     "ZNot allowed to perform deliveries as root.\n",
		QLXUsage:    "ZInternal qmail-lspawn bug.\n",
		QLXNFS:      "ZNFS failure in qmail-local.\n",
		QLXExecHard: "DUnable to run qmail-local.\n",
		QLXExecSoft: "ZUnable to run qmail-local.\n",
		QLXExecPW:   "ZUnable to run qmail-getpw.\n",
	}
	if s, ok := fixed[code]; ok {
		return []byte(s)
	}
	var kind byte
	switch code {
	case 111, 71, 74, 75:
		kind = 'Z'
	case 0:
		kind = 'K'
	default:
		kind = 'D'
	}
	if i := strings.IndexByte(string(output), 0); i >= 0 {
		output = output[:i]
	}
	return append([]byte{kind}, output...)
}

// Local is qmail-lspawn's delivery: find the recipient's account in users/cdb or
// through qmail-getpw, then run qmail-local as that account.
type Local struct {
	Home            string // QMAILHOME: bin/qmail-local, bin/qmail-getpw and users/cdb are under it
	DefaultDelivery string // qmail-start's first argument, passed on to qmail-local
	// Sandbox: run everything as ourselves and skip the root check.
	Sandbox bool
	// GetpwUID and GetpwGID are qmailp and nofiles, for qmail-getpw.
	GetpwUID, GetpwGID int
	// Workers, if set, runs the deliveries on long-running qmail-local workers while
	// bin/qmail-local is our own program; nil execs qmail-local for each delivery.
	Workers *Pool

	users usersCDB
}

// truncReport is qmail-lspawn's limit on a report's length.
const truncReport = 3000

// Deliver implements Runner.
func (l *Local) Deliver(mess *os.File, sender, recip string, at int) []byte {
	local := recip[:at]
	if local == "" {
		return LocalReport(0, false, nil) // <>: nothing to deliver
	}
	a, code := l.account(local)
	if code != 0 {
		return LocalReport(code, false, nil)
	}
	if !l.Sandbox && a.UID == 0 {
		return LocalReport(QLXRoot, false, nil)
	}
	prog := filepath.Join(l.Home, "bin", "qmail-local")
	args := []string{a.User, a.Home, local, a.Dash, a.Ext, recip[at+1:], sender, l.DefaultDelivery}
	if l.Workers != nil && l.Workers.eligible(prog) {
		out, code, crashed, ok := l.Workers.deliver(prog, a.UID, a.GID, !l.Sandbox, l.Home, args, mess)
		if ok {
			return LocalReport(code, crashed, out)
		}
	}
	cmd := exec.Command(prog, append([]string{"--"}, args...)...)
	cmd.Args[0] = "bin/qmail-local"
	cmd.Dir = l.Home
	cmd.Stdin = mess
	if !l.Sandbox {
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: uint32(a.UID), Gid: uint32(a.GID), Groups: []uint32{}},
		}
	}
	out, code, crashed, err := run(cmd, truncReport)
	if err != nil {
		if isHardExecError(err) {
			return LocalReport(QLXExecHard, false, nil)
		}
		return LocalReport(QLXExecSoft, false, nil)
	}
	return LocalReport(code, crashed, out)
}

// account finds the recipient's account; code is a QLX code on failure.
func (l *Local) account(local string) (users.Assignment, int) {
	a, ok, err := l.users.lookup(filepath.Join(l.Home, "users", "cdb"), local)
	if err != nil {
		return a, QLXCDB
	}
	if ok {
		return a, 0
	}
	return l.getpw(local)
}

// getpw runs qmail-getpw as qmailp:nofiles and parses its answer:
// user\0uid\0gid\0home\0dash\0ext\0.
func (l *Local) getpw(local string) (users.Assignment, int) {
	var a users.Assignment
	pr, pw, err := os.Pipe()
	if err != nil {
		return a, QLXSys
	}
	cmd := exec.Command(filepath.Join(l.Home, "bin", "qmail-getpw"), local)
	cmd.Args[0] = "bin/qmail-getpw"
	cmd.Dir = l.Home
	cmd.Stdout = pw
	if !l.Sandbox {
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: uint32(l.GetpwUID), Gid: uint32(l.GetpwGID), Groups: []uint32{}},
		}
	}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return a, QLXExecPW
	}
	out, rerr := io.ReadAll(io.LimitReader(pr, 64<<10))
	pr.Close()
	code, crashed := exitStatus(cmd.Wait())
	if rerr != nil || crashed {
		return a, QLXSys
	}
	if code != 0 {
		return a, code
	}
	f := strings.Split(string(out), "\x00")
	if len(f) < 7 {
		return a, QLXUsage
	}
	uid, err1 := strconv.Atoi(leadingDigits(f[1]))
	gid, err2 := strconv.Atoi(leadingDigits(f[2]))
	if err1 != nil || err2 != nil {
		return a, QLXUsage
	}
	return users.Assignment{User: f[0], UID: uid, GID: gid, Home: f[3], Dash: f[4], Ext: f[5]}, 0
}

// leadingDigits is the number at the start of s, as qmail's scan_ulong reads it.
func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return "0"
	}
	return s[:i]
}

// exitStatus turns Wait's result into an exit code, or crashed for death by signal.
func exitStatus(err error) (code int, crashed bool) {
	if err == nil {
		return 0, false
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 0, true
		}
		return ee.ExitCode(), false
	}
	return QLXSys, false
}

// isHardExecError reports whether a failure to start a program will not go away by
// itself (qmail's !error_temp): a missing or unrunnable file.
func isHardExecError(err error) bool {
	for _, e := range []error{syscall.ENOENT, syscall.EACCES, syscall.ENOEXEC, syscall.ENOTDIR, syscall.EISDIR, syscall.ELOOP} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
