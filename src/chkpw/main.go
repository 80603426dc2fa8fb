package chkpw

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/crypto/bcrypt"
)

// Exit codes of the checkpassword interface.
const (
	ExitOK        = 0
	ExitBad       = 1   // wrong user or password
	ExitMisuse    = 2   // bad arguments or input
	ExitTemporary = 111 // the password file or the subprogram could not be used
)

// CheckOptions are qmail-chkpw's surroundings.
type CheckOptions struct {
	File    string    // control/passwords
	Input   io.Reader // descriptor 3
	Stderr  io.Writer
	Sandbox bool // never change user: the whole MTA runs as one user
}

// Check is qmail-chkpw: it reads user and password from Input, checks them against
// File and, on success, runs the subprogram args in its own place (exec), with
// $USER set and, for an account line, $HOME set, the user's uid and gid taken (as
// root) and the current directory changed to the home. It returns the exit code
// only when it does not exec.
func Check(args []string, opt CheckOptions) int {
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(opt.Stderr, "qmail-chkpw: "+format+"\n", a...)
		return code
	}
	if len(args) == 0 {
		return fail(ExitMisuse, "usage: qmail-chkpw subprogram [args...]")
	}
	b, err := io.ReadAll(io.LimitReader(opt.Input, MaxInput+1))
	if err != nil {
		return fail(ExitMisuse, "unable to read descriptor 3: %v", err)
	}
	if len(b) > MaxInput {
		return fail(ExitMisuse, "more than %d bytes on descriptor 3", MaxInput)
	}
	user, pass, err := ParseInput(b)
	if err != nil {
		return fail(ExitMisuse, "%v", err)
	}
	entries, rootOnly, err := readFile(opt.File)
	if err != nil {
		return fail(ExitTemporary, "%v", err)
	}
	e := Verify(entries, user, pass)
	if e == nil {
		return ExitBad
	}
	prog, err := exec.LookPath(args[0])
	if err != nil {
		return fail(ExitTemporary, "%v", err)
	}
	env := setEnv(os.Environ(), "USER", user)
	if !e.HasAccount && !opt.Sandbox && os.Geteuid() == 0 {
		// As root (under qmail-popup) the subprogram must become a user, and a
		// line for SMTP AUTH names none: it would run as root.
		return fail(ExitTemporary, "%s: %s has no uid:gid:home: refusing to run the subprogram as root", opt.File, user)
	}
	if e.HasAccount {
		env = setEnv(env, "HOME", e.Home)
		if !opt.Sandbox && os.Geteuid() == 0 {
			// Root obeys an account line only from a file that only root can
			// change: qmaild, who runs qmail-smtpd, must read the file, and must
			// not be able to make root run the subprogram as anyone, least of all
			// as root itself.
			if !rootOnly {
				return fail(ExitTemporary, "%s: account line for %s ignored: the file must belong to root and not be writable by group or others (chown root %s; chmod go-w %s)", opt.File, user, opt.File, opt.File)
			}
			if e.UID == 0 {
				return fail(ExitTemporary, "%s: account line for %s has uid 0: refusing to run the subprogram as root", opt.File, user)
			}
			if err := becomeUser(e.UID, e.GID); err != nil {
				return fail(ExitTemporary, "%v", err)
			}
		}
		if err := os.Chdir(e.Home); err != nil {
			return fail(ExitTemporary, "unable to chdir to %s: %v", e.Home, errText(err))
		}
	}
	err = syscall.Exec(prog, args, env)
	return fail(ExitTemporary, "unable to run %s: %v", prog, err)
}

func becomeUser(uid, gid int) error {
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid %d: %w", uid, err)
	}
	return nil
}

func setEnv(env []string, k, v string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, k+"=") {
			out = append(out, kv)
		}
	}
	return append(out, k+"="+v)
}

func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// PasswdOptions are qmail-chkpw-passwd's surroundings.
type PasswdOptions struct {
	File             string
	Stdin            *os.File
	Stdout, Stderr   io.Writer
	OwnerUID, OwnerG int // owner of a newly created file; -1 keeps the caller's
	Cost             int // bcrypt cost; 0 is bcrypt.DefaultCost
}

const passwdUsage = `usage: qmail-chkpw-passwd add user [uid gid home]
       qmail-chkpw-passwd change user [uid gid home]
       qmail-chkpw-passwd delete user
       qmail-chkpw-passwd list`

// Passwd is qmail-chkpw-passwd: it adds, changes, deletes and lists the users of
// the passwords file. A new password is read from standard input: typed twice
// without echo on a terminal, else the first line.
func Passwd(args []string, opt PasswdOptions) int {
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(opt.Stderr, "qmail-chkpw-passwd: "+format+"\n", a...)
		return code
	}
	if len(args) == 0 {
		return fail(100, "%s", passwdUsage)
	}
	cmd, rest := args[0], args[1:]
	switch {
	case cmd == "list" && len(rest) == 0:
		entries, err := ReadFile(opt.File)
		if err != nil {
			return fail(111, "%v", err)
		}
		for _, e := range entries {
			l := e.User
			if e.HasAccount {
				l += " " + strconv.Itoa(e.UID) + " " + strconv.Itoa(e.GID) + " " + e.Home
			}
			fmt.Fprintln(opt.Stdout, l)
		}
		return 0
	case cmd == "delete" && len(rest) == 1:
		err := Update(opt.File, opt.OwnerUID, opt.OwnerG, func(es []Entry) ([]Entry, error) { return Delete(es, rest[0]) })
		if err != nil {
			return fail(111, "%v", err)
		}
		return 0
	case (cmd == "add" || cmd == "change") && (len(rest) == 1 || len(rest) == 4):
	default:
		return fail(100, "%s", passwdUsage)
	}
	e := Entry{User: rest[0]}
	if err := ValidUser(e.User); err != nil {
		return fail(100, "%v", err)
	}
	if len(rest) == 4 {
		var err1, err2 error
		e.UID, err1 = strconv.Atoi(rest[1])
		e.GID, err2 = strconv.Atoi(rest[2])
		e.Home, e.HasAccount = rest[3], true
		if err1 != nil || err2 != nil || e.UID < 0 || e.GID < 0 || !strings.HasPrefix(e.Home, "/") || strings.ContainsAny(e.Home, ":\n") {
			return fail(100, "uid and gid must be numbers and home an absolute path without ':'")
		}
	}
	pass, err := readPassword(opt.Stdin, opt.Stderr)
	if err != nil {
		return fail(100, "%v", err)
	}
	cost := opt.Cost
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	if e.Hash, err = Hash(pass, cost); err != nil {
		return fail(100, "%v", err)
	}
	err = Update(opt.File, opt.OwnerUID, opt.OwnerG, func(es []Entry) ([]Entry, error) {
		exists := false
		for _, x := range es {
			exists = exists || x.User == e.User
		}
		if cmd == "add" && exists {
			return nil, fmt.Errorf("%s: user exists; use change", e.User)
		}
		if cmd == "change" && !exists {
			return nil, fmt.Errorf("%s: %w; use add", e.User, ErrNoUser)
		}
		return Set(es, e, true), nil
	})
	if err != nil {
		return fail(111, "%v", err)
	}
	return 0
}

// readPassword reads a new password: on a terminal twice, without echo; else the
// first line of the input.
func readPassword(in *os.File, prompt io.Writer) (string, error) {
	restore, tty := noEcho(in)
	if !tty {
		l, err := bufio.NewReaderSize(in, 1024).ReadString('\n')
		if err != nil && (err != io.EOF || l == "") {
			return "", errors.New("no password on standard input")
		}
		return strings.TrimSuffix(strings.TrimSuffix(l, "\n"), "\r"), nil
	}
	defer restore()
	r := bufio.NewReader(in)
	var got [2]string
	for i, p := range []string{"New password: ", "Again: "} {
		io.WriteString(prompt, p)
		l, err := r.ReadString('\n')
		io.WriteString(prompt, "\n")
		if err != nil {
			return "", errors.New("no password given")
		}
		got[i] = strings.TrimSuffix(l, "\n")
	}
	if got[0] != got[1] {
		return "", errors.New("the passwords differ")
	}
	return got[0], nil
}

// noEcho turns off echo on a terminal, returning how to restore it; tty is false
// when f is not a terminal.
func noEcho(f *os.File) (restore func(), tty bool) {
	var t syscall.Termios
	fd := f.Fd()
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCGETS, uintptr(unsafe.Pointer(&t))); e != 0 {
		return nil, false
	}
	old := t
	t.Lflag &^= syscall.ECHO
	syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCSETS, uintptr(unsafe.Pointer(&t)))
	return func() { syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCSETS, uintptr(unsafe.Pointer(&old))) }, true
}
