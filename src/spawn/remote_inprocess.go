package spawn

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/remote"
)

// ForceExecEnv is the environment variable that makes qmail-rspawn run
// bin/qmail-remote for every delivery even when it is notqmail's own: set to 1.
const ForceExecEnv = "NOTQMAIL_RSPAWN_EXEC"

// ConfigTTL is how long RemoteInProcess uses the control files it read before
// reading them again, so that a change takes effect within that time.
const ConfigTTL = 2 * time.Second

// RemoteInProcess is qmail-rspawn's delivery without a process per delivery: it
// calls package remote as qmail-remote would, with the same control files, and
// keeps SMTP connections open between deliveries (remote.Pool). Its reports are
// byte for byte those of Remote running notqmail's qmail-remote.
type RemoteInProcess struct {
	Control    control.Dir // qmail-remote's control directory
	ResolvConf string      // the resolver's configuration (/etc/resolv.conf)
	TCPTO      string      // queue/lock/tcpto
	Pool       *remote.Pool

	mu     sync.Mutex
	cfg    *remote.Config
	loaded time.Time
}

// config returns the control files' configuration, read again once it is ConfigTTL
// old. A failed read is not kept: every delivery tries again until it works.
func (r *RemoteInProcess) config() (*remote.Config, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg != nil && time.Since(r.loaded) < ConfigTTL {
		return r.cfg, nil
	}
	cfg, err := remote.LoadSystemConfig(r.Control, r.ResolvConf, r.TCPTO)
	if err != nil {
		r.cfg = nil
		return nil, err
	}
	// qmail-remote's tcpto retry time is spread by its process id; in process,
	// each delivery draws its own.
	cfg.TCPTO.Jitter = func() int { return rand.IntN(32) }
	cfg.Pool = r.Pool
	r.cfg, r.loaded = cfg, time.Now()
	return cfg, nil
}

// Deliver implements Runner.
func (r *RemoteInProcess) Deliver(mess *os.File, sender, recip string, at int) (rep []byte) {
	defer func() {
		// A crash in one delivery must not take the others down with the spawner:
		// report it as the exec path reports a crashed qmail-remote.
		if recover() != nil {
			rep = RemoteReport(0, true, nil)
		}
	}()
	var out remote.Outcome
	if cfg, err := r.config(); err != nil {
		out = remote.ControlOutcome(err)
	} else {
		out = remote.Deliver(context.Background(), cfg, recip[at+1:], sender, []string{recip}, mess)
	}
	var b bytes.Buffer
	out.WriteTo(&b)
	return RemoteReport(0, false, keep(nil, b.Bytes(), 0))
}

// Close ends the pool's idle connections with QUIT.
func (r *RemoteInProcess) Close() {
	if r.Pool != nil {
		r.Pool.Close()
	}
}

// RemoteInProcessOK reports whether qmail-rspawn may deliver in process instead of
// running program: program must be named qmail-remote and be this very executable
// (a symlink or hard link to the multi-call binary, as installed), and ForceExecEnv
// must not be set. Anything else, such as a DKIM-signing wrapper script installed
// as bin/qmail-remote, is run for every delivery.
func RemoteInProcessOK(program string) bool {
	if os.Getenv(ForceExecEnv) != "" && os.Getenv(ForceExecEnv) != "0" {
		return false
	}
	if filepath.Base(program) != "qmail-remote" {
		return false
	}
	if !strings.Contains(program, "/") {
		p, err := exec.LookPath(program)
		if err != nil {
			return false
		}
		program = p
	}
	prog, err := os.Stat(program)
	if err != nil {
		return false
	}
	self, err := os.Stat("/proc/self/exe")
	if err != nil {
		exe, err := os.Executable()
		if err != nil {
			return false
		}
		if self, err = os.Stat(exe); err != nil {
			return false
		}
	}
	return os.SameFile(prog, self)
}
