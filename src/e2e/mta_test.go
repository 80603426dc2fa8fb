package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/testpeer"
)

const domain = "sandbox.example"

// guard bounds every wait so that a broken MTA fails the test instead of hanging it.
// It is a deadlock guard, not a speed expectation.
const guard = 3 * time.Minute

// daemons are the programs qmail-start runs.
var daemons = []string{"qmail-start", "qmail-send", "qmail-lspawn", "qmail-rspawn", "qmail-clean", "qmail-local"}

// needDaemons stops the test when the sandbox's binary does not serve the delivery
// daemons yet: a failure under `mage test` (peers required), a skip otherwise.
func needDaemons(t *testing.T, h *sandbox.Home) {
	t.Helper()
	var missing []string
	for _, d := range daemons {
		if _, err := os.Lstat(filepath.Join(h.Bin, d)); err != nil {
			missing = append(missing, d)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "the sandbox's notqmail does not serve " + strings.Join(missing, ", ")
	if os.Getenv(testpeer.RequireEnv) != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// startMTA runs "qmail-start ./Maildir/" in the home, with qmail-send's log (no
// logger argument) on qmail-start's standard output, as boot/home does under
// supervise.
func startMTA(t *testing.T, h *sandbox.Home) *sandbox.MTA {
	t.Helper()
	return h.StartMTA(t, sandbox.MTAOptions{Guard: guard})
}

// stop sends SIGTERM and waits for qmail-send to finish its deliveries and exit
// cleanly.
func stop(t *testing.T, m *sandbox.MTA) {
	t.Helper()
	if err := m.Stop(); err != nil {
		t.Errorf("qmail-send did not exit cleanly on SIGTERM: %v\nlog:\n%s", err, m.Log().String())
	}
}

// ownedFile writes a file in the home owned by the sandbox's user, as that user's own
// files would be.
func ownedFile(t *testing.T, h *sandbox.Home, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, h.UID, h.GID); err != nil {
		t.Fatal(err)
	}
}

func ownedDir(t *testing.T, h *sandbox.Home, path string) {
	t.Helper()
	if err := os.Mkdir(path, 0700); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, h.UID, h.GID); err != nil {
		t.Fatal(err)
	}
}

func ownedMaildir(t *testing.T, h *sandbox.Home, path string) {
	t.Helper()
	ownedDir(t, h, path)
	for _, sub := range []string{"tmp", "new", "cur"} {
		ownedDir(t, h, filepath.Join(path, sub))
	}
}

// maildirFiles returns the contents of the messages in a Maildir's new/ and cur/.
func maildirFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(b))
		}
	}
	return out
}

func countFiles(dir string) int {
	n := 0
	for _, sub := range []string{"new", "cur", ""} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range ents {
			if e.Type().IsRegular() {
				n++
			}
		}
	}
	return n
}

// inject runs a program from the home's bin/ with a message on stdin.
func inject(h *sandbox.Home, msg string, prog string, args ...string) error {
	return injectEnv(h, nil, msg, prog, args...)
}

// injectEnv is inject with extra environment variables.
func injectEnv(h *sandbox.Home, env []string, msg string, prog string, args ...string) error {
	cmd := h.Command(prog, args...)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(msg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %q: %v: %s", prog, args, err, out.String())
	}
	return nil
}
