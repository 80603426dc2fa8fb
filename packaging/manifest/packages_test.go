package manifest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/testpeer"
)

// Every service file the manifest names is in packaging/services, and every file
// there is named: a missing unit would stop a release, an unlisted one is never shipped.
func TestServiceFilesExist(t *testing.T) {
	named := map[string]bool{}
	for _, u := range Units {
		named["systemd/"+u.Name] = true
	}
	for _, s := range OpenRC {
		named["openrc/"+s.Name] = true
	}
	for _, r := range Runit {
		named["runit/"+r.Name+"/run"] = true
		named["runit/"+r.Name+"/log/run"] = true
	}
	dir := filepath.Join("..", "services")
	sh := testpeer.Need(t, "sh")
	for n := range named {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if strings.HasPrefix(n, "systemd/") == (fi.Mode().Perm()&0o111 != 0) {
			t.Errorf("%s: mode %v (units are not executable, scripts are)", n, fi.Mode())
		}
		if !strings.HasPrefix(n, "systemd/") {
			// OpenRC scripts are sh with openrc-run's variables; run scripts are sh.
			if out, err := exec.Command(sh, "-n", filepath.Join(dir, n)).CombinedOutput(); err != nil {
				t.Errorf("%s: sh -n: %v\n%s", n, err, out)
			}
		}
	}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			if !named[filepath.ToSlash(rel)] {
				t.Errorf("packaging/services/%s is not in the manifest", rel)
			}
		}
		return nil
	})
	// Units that serve mail are enabled only where safe: never QMQP (it relays for
	// every client) nor POP3 and submission (they need accounts, and a certificate).
	for _, u := range Units {
		if u.Enable && (strings.Contains(u.Name, "qmqpd") || strings.Contains(u.Name, "pop3d") || strings.Contains(u.Name, "submission") || strings.Contains(u.Name, "smtps")) {
			t.Errorf("%s is enabled on installation", u.Name)
		}
	}
}
