// Package home locates the qmail home directory ($QMAILHOME, normally /var/qmail) and
// says whether the MTA runs in sandbox mode.
//
// Sandbox mode: QMAILHOME naming a directory owned by a non-root user puts the whole MTA
// under that directory, with every program running as that user and the privilege steps
// (setuid, chown, the uid checks) skipped. Everything else follows the same code paths,
// so the integration tests, the benchmarks and the demo exercise the real programs
// without root. Root running a program in a sandbox first becomes the sandbox's owner
// (EnterSandbox).
package home

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Default is the compiled-in qmail home, qmail's conf-qmail. Like conf-qmail it is a
// build-time setting, so a test can build a setuid qmail-queue whose trusted home is a
// scratch directory:
//
//	go build -ldflags "-X github.com/notqmail/notqmail/src/home.Default=/tmp/q" ./src/cmd/qmail-queue
var Default = "/var/qmail"

// Dir returns the qmail home. A setuid or setgid program (qmail-queue) never trusts
// the environment: it always gets Default, so a caller cannot steer its writes.
func Dir() string {
	if privileged() {
		return Default
	}
	if d := os.Getenv("QMAILHOME"); d != "" {
		if abs, err := filepath.Abs(d); err == nil {
			return abs
		}
		return d
	}
	return Default
}

// Owner is the sandbox's user: the owner of QMAILHOME.
type Owner struct{ UID, GID int }

// Sandbox reports whether the MTA runs in sandbox mode, and as whom: QMAILHOME set
// (and trusted) and owned by a non-root user.
func Sandbox() (Owner, bool) {
	if privileged() || os.Getenv("QMAILHOME") == "" {
		return Owner{}, false
	}
	fi, err := os.Stat(Dir())
	if err != nil {
		return Owner{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return Owner{}, false
	}
	return Owner{UID: int(st.Uid), GID: int(st.Gid)}, true
}

// InSandbox reports whether the MTA runs in sandbox mode.
func InSandbox() bool {
	_, ok := Sandbox()
	return ok
}

// EnterSandbox makes a root process the sandbox's owner, dropping supplementary groups,
// so that nothing in a sandbox ever runs as root. It does nothing outside a sandbox or
// when the process is not root.
func EnterSandbox() error {
	o, ok := Sandbox()
	if !ok || os.Geteuid() != 0 {
		return nil
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("sandbox: dropping groups: %w", err)
	}
	if err := syscall.Setgid(o.GID); err != nil {
		return fmt.Errorf("sandbox: setgid %d: %w", o.GID, err)
	}
	if err := syscall.Setuid(o.UID); err != nil {
		return fmt.Errorf("sandbox: setuid %d: %w", o.UID, err)
	}
	return nil
}

// privileged reports whether the process runs with ids other than its caller's.
func privileged() bool {
	return os.Geteuid() != os.Getuid() || os.Getegid() != os.Getgid()
}

// Path joins elements under the qmail home: Path("control", "me").
func Path(elem ...string) string {
	return filepath.Join(append([]string{Dir()}, elem...)...)
}
