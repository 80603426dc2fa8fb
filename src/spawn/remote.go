package spawn

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// RemoteReport turns qmail-remote's exit and output into qmail-rspawn's report.
// qmail-remote writes one report per recipient (r ok, h permanent, s temporary) and
// then one for the message (K, Z or D), each \0-terminated; with a single recipient
// per run, the recipient's report decides, and the message's text follows it when the
// message's outcome is no better.
func RemoteReport(code int, crashed bool, s []byte) []byte {
	if crashed {
		return []byte("Zqmail-remote crashed.\n")
	}
	switch code {
	case 0:
	case 111:
		return []byte("ZUnable to run qmail-remote.\n")
	default:
		return []byte("DUnable to run qmail-remote.\n")
	}
	if len(s) == 0 {
		return []byte("Zqmail-remote produced no output.\n")
	}
	// result: the message report: 1 K, 0 Z, -1 D or none.
	result := -1
	j := 0
	for k := 0; k < len(s); k++ {
		if s[k] != 0 {
			continue
		}
		if s[j] == 'K' {
			result = 1
			break
		}
		if s[j] == 'Z' {
			result = 0
			break
		}
		if s[j] == 'D' {
			break
		}
		j = k + 1
	}
	orr := result
	switch s[0] {
	case 's':
		orr = 0
	case 'h':
		orr = -1
	}
	out := []byte{"DZK"[orr+1]}
	// The first report's text, then the message report's text when it is no better.
	for k := 1; k < len(s); {
		c := s[k]
		k++
		if c != 0 {
			continue
		}
		out = append(out, cstr(s[1:])...)
		if result <= orr && k < len(s) {
			switch s[k] {
			case 'Z', 'D', 'K':
				out = append(out, cstr(s[k+1:])...)
			}
		}
		break
	}
	return out
}

func cstr(b []byte) []byte {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		return b[:i]
	}
	return b
}

// Remote is qmail-rspawn's delivery: run qmail-remote (or $QMAILREMOTE) with
// host sender recip, the message on stdin.
type Remote struct {
	Program string // the program to run; see RemoteProgram
	Dir     string // working directory: queue/mess, as in qmail
}

// RemoteProgram is the delivery program: $QMAILREMOTE if set, else qmail-remote from
// QMAILHOME/bin, else from PATH.
func RemoteProgram(qmailHome string) string {
	if p := os.Getenv("QMAILREMOTE"); p != "" {
		return p
	}
	p := filepath.Join(qmailHome, "bin", "qmail-remote")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "qmail-remote"
}

// Deliver implements Runner.
func (r *Remote) Deliver(mess *os.File, sender, recip string, at int) []byte {
	path := r.Program
	if !strings.Contains(path, "/") {
		lp, err := exec.LookPath(path)
		if err != nil {
			// Not installed yet: a temporary failure, so the mail waits for it.
			return RemoteReport(111, false, nil)
		}
		path = lp
	}
	cmd := exec.Command(path, recip[at+1:], sender, recip)
	cmd.Args[0] = r.Program
	cmd.Dir = r.Dir
	cmd.Stdin = mess
	out, code, crashed, err := run(cmd, 0)
	if err != nil {
		if isHardExecError(err) && !errorsIsNotExist(err) {
			return RemoteReport(100, false, nil)
		}
		return RemoteReport(111, false, nil)
	}
	return RemoteReport(code, crashed, out)
}

func errorsIsNotExist(err error) bool { return errors.Is(err, syscall.ENOENT) }

// CleanTCPTo zeroes queue/lock/tcpto, qmail-remote's table of hosts that timed out, as
// qmail-rspawn does when it starts. A missing file is left missing.
func CleanTCPTo(queueDir string) {
	f, err := os.OpenFile(filepath.Join(queueDir, "lock", "tcpto"), os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX) != nil {
		return
	}
	f.WriteAt(make([]byte, 1024), 0)
}
