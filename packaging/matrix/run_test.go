package matrix

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/packaging/chroot"
	"github.com/notqmail/notqmail/src/testpeer"
)

// brokenDeb builds a package called notqmail that dpkg can unpack: with postinst
// "exit 1" it fails to configure; with "exit 0" it installs and provides nothing.
func brokenDeb(t *testing.T, dir, version, postinst string) string {
	t.Helper()
	dpkgDeb := testpeer.Need(t, "dpkg-deb")
	src := filepath.Join(dir, "src-"+version)
	if err := os.MkdirAll(filepath.Join(src, "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(src, "usr/share/doc/notqmail"), 0o755)
	os.WriteFile(filepath.Join(src, "usr/share/doc/notqmail/README"), []byte("deliberately broken\n"), 0o644)
	control := "Package: notqmail\nVersion: " + version + "\nArchitecture: amd64\nMaintainer: matrix test <t@example.org>\nDescription: deliberately broken notqmail\n"
	os.WriteFile(filepath.Join(src, "DEBIAN/control"), []byte(control), 0o644)
	os.WriteFile(filepath.Join(src, "DEBIAN/postinst"), []byte("#!/bin/sh\necho 'postinst: deliberately broken by the matrix test'\n"+postinst+"\n"), 0o755)
	out := filepath.Join(dir, "notqmail_"+version+"_amd64.deb")
	if b, err := exec.Command(dpkgDeb, "--root-owner-group", "-b", src, out).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, b)
	}
	return out
}

func cellMap(res Result) map[string]Cell {
	m := map[string]Cell{}
	for _, c := range res.Cells {
		m[c.Step] = c
	}
	return m
}

// A deliberately broken package turns the right cells red, each with a log that says
// why, and leaves the cells after it not run with the reason. This runs the real kit in
// a real Debian 12 root.
func TestBrokenPackagesTurnCellsRed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the runner builds and enters chroots: needs root")
	}
	testpeer.Need(t, "mmdebstrap")
	rows, err := LoadRows(filepath.Join(tree, "distros"))
	if err != nil {
		t.Fatal(err)
	}
	row, _ := EveryChangeRow(rows)
	cache := os.Getenv(CacheEnv)
	work := t.TempDir()
	ctx := context.Background()
	newRunner := func(cur, prev string) *Runner {
		p := Packages{Version: "9.9", Current: map[string]string{"amd64/deb": cur}}
		if prev != "" {
			p.Previous = map[string]string{"amd64/deb": prev}
			p.PreviousVersion = "9.8"
		} else {
			p.PreviousWhy = "none in this test"
		}
		return &Runner{Tree: tree, Work: work, Cache: chroot.Cache{Dir: cache}, Packages: p}
	}

	t.Run("postinst exits 1", func(t *testing.T) {
		res := newRunner(brokenDeb(t, t.TempDir(), "9.9", "exit 1"), "").Run(ctx, row)
		cells := cellMap(res)
		in := cells["install"]
		if in.Status != Fail || !strings.Contains(in.Reason, "installing") {
			t.Fatalf("install cell %+v, want a failure", in)
		}
		if !strings.Contains(in.LogTail, "deliberately broken") || !strings.Contains(in.LogTail, "exit status 1") {
			t.Errorf("the install log does not say why:\n%s", in.LogTail)
		}
		if b, err := os.ReadFile(filepath.Join(work, "logs", row.Name, "install.log")); err != nil || !strings.Contains(string(b), "post-installation script") {
			t.Errorf("install.log: %v\n%s", err, b)
		}
		for _, s := range []string{"users", "start", "smtp", "sendmail"} {
			if c := cells[s]; c.Status != NotRun || c.Reason != "install failed" {
				t.Errorf("%s cell %+v, want not run because the install failed", s, c)
			}
		}
		if c := cells["overqmail"]; c.Status != Fail || !strings.Contains(c.Reason, "installing over the qmail installation failed") {
			t.Errorf("overqmail cell %+v, want the install over qmail to fail", c)
		}
		if c := cells["upgrade"]; c.Status != NotRun || !strings.Contains(c.Reason, "none in this test") {
			t.Errorf("upgrade cell %+v, want not run: no previous build", c)
		}
	})

	t.Run("installs but provides nothing", func(t *testing.T) {
		dir := t.TempDir()
		res := newRunner(brokenDeb(t, dir, "9.9", "exit 0"), brokenDeb(t, dir, "9.8", "exit 0")).Run(ctx, row)
		cells := cellMap(res)
		if c := cells["install"]; c.Status != Pass {
			t.Fatalf("install cell %+v, want pass", c)
		}
		u := cells["users"]
		if u.Status != Fail || !strings.Contains(u.LogTail, "missing user qmailq") || !strings.Contains(u.LogTail, "missing: /var/qmail/queue") {
			t.Errorf("users cell %+v, want a failure naming what is missing", u)
		}
		if c := cells["start"]; c.Status != Fail || !strings.Contains(c.Reason, "qmail-start") {
			t.Errorf("start cell %+v, want a failure about qmail-start", c)
		}
		for _, s := range []string{"smtp", "sendmail"} {
			if c := cells[s]; c.Status != NotRun || c.Reason != "the MTA did not start" {
				t.Errorf("%s cell %+v", s, c)
			}
		}
		// The previous build installs, but cannot queue mail: the upgrade is red.
		if c := cells["upgrade"]; c.Status != Fail || !strings.Contains(c.Reason, "cannot queue") {
			t.Errorf("upgrade cell %+v, want a failure to queue with the previous build", c)
		}
		for _, s := range []string{"remove", "purge"} {
			if c := cells[s]; c.Status != NotRun || c.Reason != "the upgrade failed" {
				t.Errorf("%s cell %+v", s, c)
			}
		}
	})
}
