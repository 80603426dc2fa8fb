package release

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/packaging/manifest"
	"github.com/notqmail/notqmail/src/testpeer"
)

// The debs for this host's architecture and those for every architecture.
func lintTargets(arts []Artifact, suffix, hostMark string) []string {
	var n []string
	for _, x := range find(arts, suffix) {
		if strings.Contains(x, hostMark) || strings.Contains(x, "_all.") || strings.Contains(x, ".noarch.") {
			n = append(n, x)
		}
	}
	return n
}

// lintian finds no errors and no warnings; the only overrides are the commented ones in
// packaging/etc/lintian-overrides, each a qmail requirement.
func TestLintianClean(t *testing.T) {
	t.Parallel()
	dist, arts := packaged(t)
	lintian := testpeer.Need(t, "lintian")
	debs := lintTargets(arts, ".deb", "_amd64.")
	if len(debs) == 0 {
		t.Fatalf("no amd64 deb in %v", arts)
	}
	args := []string{"--fail-on", "error,warning", "--tag-display-limit", "0"}
	for _, d := range debs {
		args = append(args, filepath.Join(dist, d))
	}
	// One run for all of them: lintian's start-up is most of its time.
	out, err := exec.Command(lintian, args...).CombinedOutput()
	tags := regexp.MustCompile(`(?m)^[EW]: .*$`).FindAllString(string(out), -1)
	if err != nil || len(tags) > 0 {
		t.Errorf("lintian %v: %v\n%s\n%s", debs, err, strings.Join(tags, "\n"), out)
	}
}

// rpmlint finds no errors beyond those packaging/etc/rpmlintrc filters, each commented
// (the sub-packages need none of them, hence --ignore-unused-rpmlintrc).
func TestRpmlintClean(t *testing.T) {
	t.Parallel()
	dist, arts := packaged(t)
	rpmlint := testpeer.Need(t, "rpmlint")
	cpio := testpeer.Need(t, "cpio")
	// rpmlint unpacks with `rpm2cpio | cpio -id`, and nfpm's payloads name files by
	// absolute paths: without this wrapper cpio would write the package into /.
	wrap := t.TempDir()
	if err := os.WriteFile(filepath.Join(wrap, "cpio"), []byte("#!/bin/sh\nexec "+cpio+" --no-absolute-filenames \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	rpms := lintTargets(arts, ".rpm", ".x86_64.")
	if len(rpms) == 0 {
		t.Fatalf("no x86_64 rpm in %v", arts)
	}
	for _, r := range rpms {
		cmd := exec.Command(rpmlint, "--ignore-unused-rpmlintrc", "-r", filepath.Join(absRoot(t), "packaging", "etc", "rpmlintrc"), filepath.Join(dist, r))
		cmd.Env = append(os.Environ(), "PATH="+wrap+":"+os.Getenv("PATH"))
		cmd.Dir = t.TempDir()
		out, _ := cmd.CombinedOutput()
		if !regexp.MustCompile(`\b0 errors\b`).Match(out) || regexp.MustCompile(`(?m): E: `).Match(out) {
			t.Errorf("rpmlint %s:\n%s", r, out)
		}
	}
}

// The apk has no conffile mechanism nfpm can use: its contents, scripts and metadata
// are checked here instead of by an installer.
func TestAPKContentsScriptsMetadata(t *testing.T) {
	dist, arts := packaged(t)
	tar := testpeer.Need(t, "tar")
	var apk string
	for _, a := range core(find(arts, ".apk")) {
		if strings.Contains(a, "x86_64") {
			apk = filepath.Join(dist, a)
		}
	}
	if apk == "" {
		t.Fatalf("no x86_64 apk in %v", arts)
	}
	info := run(t, tar, "-xzOf", apk, ".PKGINFO")
	for _, w := range []string{"pkgname = notqmail\n", "arch = x86_64\n", "depend = !postfix\n", "depend = !exim\n", "provides = cmd:sendmail\n", "provides = cmd:mailq\n"} {
		if !strings.Contains(info, w) {
			t.Errorf(".PKGINFO lacks %q:\n%s", w, info)
		}
	}
	scripts := map[string][]string{
		".pre-install":  {"addgroup -S qmail", "adduser -S -D -H -G nofiles -h /var/qmail/alias", "mv /var/qmail/control /etc/qmail"},
		".pre-upgrade":  {"adduser -S -D -H -G qmail -h /var/qmail", "qmails"},
		".post-install": {"cp -p /usr/share/notqmail/etc/defaultdelivery /etc/qmail/defaultdelivery", "[ -e /etc/qmail/defaultdelivery ]", "/usr/lib/notqmail/bin/qmail-config", "/usr/lib/notqmail/bin/qmail-qfix -f /var/qmail/queue"},
		".post-upgrade": {"[ -e /etc/qmail/defaultdelivery ]", "/usr/lib/notqmail/bin/qmail-qfix -f /var/qmail/queue"},
	}
	for name, wants := range scripts {
		s := run(t, tar, "-xzOf", apk, name)
		for _, w := range wants {
			if !strings.Contains(s, w) {
				t.Errorf("%s lacks %q:\n%s", name, w, s)
			}
		}
		if strings.Contains(s, "mv /var/qmail/control") && name != ".pre-install" {
			t.Errorf("%s moves the control directory on upgrade", name)
		}
	}
	long := run(t, tar, "-tvzf", apk)
	for _, w := range []string{
		"-rws--x--x qmailq/qmail", // qmail-queue
		"drwxr-sr-x alias/qmail",  // var/qmail/alias
		"-rwxr-xr-x root/root",    // OpenRC scripts
		"etc/init.d/qmail-send",   // OpenRC
		"usr/lib/notqmail/service/qmail-send/run",
		"usr/sbin/sendmail -> ../lib/notqmail/bin/sendmail",
	} {
		if !strings.Contains(long, w) {
			t.Errorf("apk listing lacks %q", w)
		}
	}
	for _, bad := range []string{`usr/lib/systemd/`, `etc/qmail/\S`, `var/qmail/queue`} {
		if regexp.MustCompile(bad).MatchString(long) {
			t.Errorf("apk ships %s", bad)
		}
	}
}

// A failed packaging run leaves dist/ as it was: here the apk signing key is unusable,
// so the deb and rpm are written before the failure.
func TestFailedRunLeavesDistUntouched(t *testing.T) {
	t.Parallel()
	packaged(t) // the snapshot
	dir := t.TempDir()
	dist := filepath.Join(dir, "dist")
	os.MkdirAll(dist, 0o755)
	old := map[string]string{"notqmail_0.9-1_amd64.deb": "old deb", SumsFile: "old sums\n", "notes.txt": "kept"}
	for n, c := range old {
		os.WriteFile(filepath.Join(dist, n), []byte(c), 0o644)
	}
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	var log bytes.Buffer
	_, err := Package(context.Background(), Options{Root: snapshotRoot(), Build: filepath.Join(dir, "build"), Dist: dist, Arches: []string{hostArch()}, Log: &log,
		Sign: &manifest.SignConfig{APKKey: bad}})
	if err == nil {
		t.Fatalf("packaging with a broken key succeeded\n%s", log.String())
	}
	ents, _ := os.ReadDir(dist)
	if len(ents) != len(old) {
		t.Errorf("dist holds %d files after the failure, want the %d it had", len(ents), len(old))
	}
	for n, c := range old {
		if b, _ := os.ReadFile(filepath.Join(dist, n)); string(b) != c {
			t.Errorf("%s changed to %q", n, b)
		}
	}
	if st, _ := filepath.Glob(filepath.Join(dir, ".dist-staging-*")); len(st) > 0 {
		t.Errorf("staging left behind: %v", st)
	}
}
