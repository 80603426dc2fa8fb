package release

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/notqmail/notqmail/packaging/manpage"
	"github.com/notqmail/notqmail/src/testpeer"
)

const root = "../.."

// One packaging run is shared by the tests below: cross-building two architectures is
// the slow part. It builds from a snapshot of the tree, so that work going on in the
// tree meanwhile cannot make the two builds of the reproducibility test differ, with a
// VERSION file, so the version's way into each format is checked too.
var shared struct {
	once sync.Once
	dir  string
	arts []Artifact
	log  bytes.Buffer
	err  error
}

const (
	snapshotVersion = "1.2.3-rc1"
	snapshotEpoch   = 1700000000 // 2023-11-14
)

func snapshotRoot() string { return filepath.Join(shared.dir, "src") }

func packaged(t *testing.T) (dist string, arts []Artifact) {
	t.Helper()
	s := &shared
	s.once.Do(func() {
		s.dir, s.err = os.MkdirTemp("", "notqmail-release-")
		if s.err != nil {
			return
		}
		if s.err = snapshot(root, snapshotRoot()); s.err != nil {
			return
		}
		if s.err = os.WriteFile(filepath.Join(snapshotRoot(), "VERSION"), []byte(snapshotVersion+"\n"), 0o644); s.err != nil {
			return
		}
		o := Options{Root: snapshotRoot(), Build: filepath.Join(s.dir, "build"), Dist: filepath.Join(s.dir, "dist"), Log: &s.log}
		s.arts, s.err = Package(context.Background(), o)
	})
	if s.err != nil {
		t.Fatalf("packaging failed: %v\n%s", s.err, s.log.String())
	}
	return filepath.Join(s.dir, "dist"), s.arts
}

// snapshot copies the source tree, without .git and without build output.
func snapshot(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		if d.IsDir() && (rel == ".git" || rel == "build" || rel == "dist") {
			return filepath.SkipDir
		}
		dst := filepath.Join(to, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			return os.WriteFile(dst, b, fi.Mode().Perm())
		}
		return nil
	})
}

func TestMain(m *testing.M) {
	os.Setenv("SOURCE_DATE_EPOCH", strconv.Itoa(snapshotEpoch))
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

func absRoot(t *testing.T) string {
	r, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Every program the multi-call binary serves, and every other binary under src/cmd,
// has a man page, and every page renders.
func TestProgramsHaveManPages(t *testing.T) {
	cmds, err := Commands(root)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var log bytes.Buffer
	if err := BuildBinaries(context.Background(), absRoot(t), hostArch(), "test", dir, []string{MultiCall}, &log); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	progs, err := Programs(context.Background(), filepath.Join(dir, MultiCall))
	if err != nil {
		t.Fatal(err)
	}
	pages, err := manpage.List(filepath.Join(root, "src", "man"))
	if err != nil {
		t.Fatal(err)
	}
	has := map[string]bool{}
	for _, p := range pages {
		has[p.Name] = true
		if _, err := manpage.Render(p); err != nil {
			t.Error(err)
		}
	}
	for _, p := range append(append([]string{MultiCall}, progs...), cmds...) {
		if !has[p] {
			t.Errorf("program %s has no man page in src/man", p)
		}
	}
}

func hostArch() string {
	for _, a := range Arches {
		if HostRunnable(a) {
			return a
		}
	}
	return strings.TrimSpace(goEnv("GOARCH"))
}

func goEnv(k string) string {
	out, _ := exec.Command(goTool(), "env", k).Output()
	return string(out)
}

func TestProgramsRejectsBrokenBinaries(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "notqmail")
	os.WriteFile(fake, []byte("#!/bin/sh\nexit 0\n"), 0o755)
	if _, err := Programs(context.Background(), fake); err == nil {
		t.Error("empty --list accepted")
	}
	os.WriteFile(fake, []byte("#!/bin/sh\necho oops >&2; exit 111\n"), 0o755)
	if _, err := Programs(context.Background(), fake); err == nil || !strings.Contains(err.Error(), "oops") {
		t.Errorf("failing --list: %v", err)
	}
	os.WriteFile(fake, []byte("#!/bin/sh\nyes qmail-send | head -c 2000000\n"), 0o755)
	if _, err := Programs(context.Background(), fake); err == nil {
		t.Error("unbounded --list accepted")
	}
}

// core keeps the core package's files: notqmail_* (deb, apk) and notqmail-<version> (rpm).
func core(names []string) []string {
	var n []string
	for _, x := range names {
		if strings.HasPrefix(x, "notqmail_") || regexp.MustCompile(`^notqmail-[0-9]`).MatchString(x) {
			n = append(n, x)
		}
	}
	return n
}

func find(arts []Artifact, suffix string) []string {
	var n []string
	for _, a := range arts {
		if strings.HasSuffix(a.Name, suffix) {
			n = append(n, a.Name)
		}
	}
	return n
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPackagesReadByRealTools(t *testing.T) {
	dist, arts := packaged(t)
	debs, rpms, apks := core(find(arts, ".deb")), core(find(arts, ".rpm")), core(find(arts, ".apk"))
	if len(debs) != 2 || len(rpms) != 2 || len(apks) != 2 || len(find(arts, SumsFile)) != 1 {
		t.Fatalf("artifacts: %+v", arts)
	}

	// What every package must hold, in each tool's listing format.
	binWant := []string{"usr/lib/notqmail/bin/notqmail", "usr/share/man/man8/notqmail.8.gz", "etc/qmail/defaultdelivery", "var/qmail/bin"}
	if fileExists(filepath.Join(snapshotRoot(), "src", "cmd", "qmail-queue")) {
		binWant = append(binWant, "usr/lib/notqmail/bin/qmail-queue")
	}

	dpkgDeb := testpeer.Need(t, "dpkg-deb")
	for _, d := range debs {
		p := filepath.Join(dist, d)
		info := run(t, dpkgDeb, "-I", p)
		for _, w := range []string{"Package: notqmail", "Pre-Depends: passwd", "preinst"} {
			if !strings.Contains(info, w) {
				t.Errorf("%s: dpkg-deb -I lacks %q:\n%s", d, w, info)
			}
		}
		arch := strings.TrimSpace(run(t, dpkgDeb, "-f", p, "Architecture"))
		if !strings.Contains(d, "_"+arch+".deb") {
			t.Errorf("%s: Architecture %s", d, arch)
		}
		if v := strings.TrimSpace(run(t, dpkgDeb, "-f", p, "Version")); v != "1.2.3~rc1-1" {
			t.Errorf("%s: Version %s, want 1.2.3~rc1-1 (from VERSION %s)", d, v, snapshotVersion)
		}
		list := run(t, dpkgDeb, "-c", p)
		for _, w := range binWant {
			if !strings.Contains(list, "./"+w) {
				t.Errorf("%s lacks %s:\n%s", d, w, list)
			}
		}
		if strings.Contains(list, "qmail-queue") && !strings.Contains(list, "-rws--x--x qmailq/qmail") {
			t.Errorf("%s: qmail-queue is not setuid qmailq 4711:\n%s", d, list)
		}
		ctrl := filepath.Join(t.TempDir(), "control")
		run(t, dpkgDeb, "-e", p, ctrl)
		if conf, err := os.ReadFile(filepath.Join(ctrl, "conffiles")); err != nil || !strings.Contains(string(conf), "/etc/qmail/defaultdelivery") {
			t.Errorf("%s: conffiles %q, %v", d, conf, err)
		}
	}

	rpm := testpeer.Need(t, "rpm")
	for _, r := range rpms {
		p := filepath.Join(dist, r)
		info := run(t, rpm, "-qip", p)
		if !strings.Contains(info, "notqmail") || !strings.Contains(info, "Architecture:") {
			t.Errorf("%s: rpm -qip:\n%s", r, info)
		}
		if v := run(t, rpm, "-qp", "--qf", "%{VERSION}-%{RELEASE} %{BUILDTIME}", p); v != "1.2.3~rc1-1 "+strconv.Itoa(snapshotEpoch) {
			t.Errorf("%s: version and build time %q", r, v)
		}
		list := run(t, rpm, "-qlp", p)
		for _, w := range binWant {
			if !strings.Contains(list, "/"+w) {
				t.Errorf("%s lacks /%s:\n%s", r, w, list)
			}
		}
		if long := run(t, rpm, "-qlvp", p); strings.Contains(long, "qmail-queue") &&
			!regexp.MustCompile(`-rws--x--x +1 qmailq +qmail .* /usr/lib/notqmail/bin/qmail-queue`).MatchString(long) {
			t.Errorf("%s: qmail-queue is not setuid qmailq 4711:\n%s", r, long)
		}
		cfg := run(t, rpm, "-qcp", p)
		if !strings.Contains(cfg, "/etc/qmail/defaultdelivery") {
			t.Errorf("%s: defaultdelivery is not %%config:\n%s", r, cfg)
		}
		scripts := run(t, rpm, "-qp", "--scripts", p)
		if !strings.Contains(scripts, "preinstall") || !strings.Contains(scripts, "useradd") {
			t.Errorf("%s: no pre-install creating users:\n%s", r, scripts)
		}
	}

	tar := testpeer.Need(t, "tar")
	for _, a := range apks {
		if info := run(t, tar, "-xzOf", filepath.Join(dist, a), ".PKGINFO"); !strings.Contains(info, "pkgver = 1.2.3_rc1-r0\n") {
			t.Errorf("%s: .PKGINFO:\n%s", a, info)
		}
		if long := run(t, tar, "-tvzf", filepath.Join(dist, a)); strings.Contains(long, "qmail-queue") &&
			!strings.Contains(long, "-rws--x--x qmailq/qmail") {
			t.Errorf("%s: qmail-queue is not setuid qmailq 4711:\n%s", a, long)
		}
		list := run(t, tar, "-tzf", filepath.Join(dist, a))
		// The apk has no conffiles: it carries the defaults, and its scripts copy them
		// into /etc/qmail when absent.
		apkWant := []string{".PKGINFO", ".pre-install", ".post-install", ".pre-upgrade", ".post-upgrade", "usr/share/notqmail/etc/defaultdelivery"}
		for _, w := range binWant {
			if w != "etc/qmail/defaultdelivery" {
				apkWant = append(apkWant, w)
			}
		}
		if strings.Contains(list, "etc/qmail/defaultdelivery") && !strings.Contains(list, "share/notqmail/etc/defaultdelivery") {
			t.Errorf("%s ships /etc/qmail/defaultdelivery, which an upgrade would overwrite", a)
		}
		for _, w := range apkWant {
			if !strings.Contains(list, w) {
				t.Errorf("%s lacks %s:\n%s", a, w, list)
			}
		}
	}
}

func TestChecksumsVerify(t *testing.T) {
	dist, arts := packaged(t)
	cmd := exec.Command("sha256sum", "--strict", "-c", SumsFile)
	cmd.Dir = dist
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), ": OK"); n != len(arts)-1 {
		t.Errorf("%d files verified, want %d:\n%s", n, len(arts)-1, out)
	}
}

// A second run from the same tree writes byte-identical packages.
func TestPackagesAreReproducible(t *testing.T) {
	dist, _ := packaged(t)
	first, err := os.ReadFile(filepath.Join(dist, SumsFile))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var log bytes.Buffer
	o := Options{Root: snapshotRoot(), Build: filepath.Join(dir, "build"), Dist: filepath.Join(dir, "dist"), Log: &log}
	if _, err := Package(context.Background(), o); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	second, err := os.ReadFile(filepath.Join(dir, "dist", SumsFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Errorf("two builds differ:\n%s\nvs\n%s", first, second)
	}
}
