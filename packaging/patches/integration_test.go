package patches

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/packaging/chroot"
	"github.com/notqmail/notqmail/packaging/release"
	"github.com/notqmail/notqmail/src/testpeer"
)

// The one test on this project's own tree: a copy of it with a one-line site patch
// goes through the real pipeline (apply, test, release.Package for amd64), and the
// packages carry the site version, the patch list and the patched file. As root with
// mmdebstrap, the deb is then installed in a Debian bookworm chroot, which shows the
// patch list.
func TestSiteBuildOfThisTree(t *testing.T) {
	if os.Getenv(InsideEnv) != "" {
		t.Skip("already inside a site build's tests")
	}
	if testing.Short() {
		t.Skip("builds the project's packages")
	}
	needTools(t)
	dpkgDeb := testpeer.Need(t, "dpkg-deb")
	rpmBin := testpeer.Need(t, "rpm")
	ctx := context.Background()

	root := filepath.Join(t.TempDir(), "notqmail")
	if err := CopyTree(ctx, filepath.Join("..", ".."), root); err != nil {
		t.Fatal(err)
	}
	const page = "src/man/notqmail.8.md"
	orig, err := os.ReadFile(filepath.Join(root, page))
	if err != nil {
		t.Fatal(err)
	}
	const added = "Built at example.org with its site patches."
	patch := "Say where this build comes from.\n" + unifiedDiff(t, page, string(orig), string(orig)+"\n"+added+"\n")
	writeFiles(t, root, map[string]string{
		"VERSION":                 "1.2.3\n",
		"patches/series":          "# site-revision: 1\nsite-note.patch\n",
		"patches/site-note.patch": patch,
	})
	var log bytes.Buffer
	arts, err := Package(ctx, Options{
		Release:      release.Options{Root: root, Arches: []string{"amd64"}, Log: &log},
		TestPackages: []string{"./packaging/manpage"},
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if b, _ := os.ReadFile(filepath.Join(root, page)); !bytes.Equal(b, orig) {
		t.Fatal("the source tree itself was patched")
	}
	// The core package, which holds the binaries and the patch list ("notqmail-qmtp"
	// and other split packages start the same way, but not with a digit next).
	names := map[string]string{}
	for _, a := range arts {
		if rest, ok := strings.CutPrefix(a.Name, "notqmail"); ok && len(rest) > 1 && rest[1] >= '0' && rest[1] <= '9' {
			names[filepath.Ext(a.Name)] = filepath.Join(root, "dist", a.Name)
		}
	}
	deb, rpm, apk := names[".deb"], names[".rpm"], names[".apk"]
	if deb == "" || rpm == "" || apk == "" {
		t.Fatalf("artifacts %v", arts)
	}
	if !strings.Contains(filepath.Base(apk), "1.2.3_p0_p1-r0") {
		t.Errorf("apk %s lacks version 1.2.3_p0_p1-r0", apk)
	}
	if out, err := exec.Command(dpkgDeb, "-f", deb, "Version").Output(); err != nil || strings.TrimSpace(string(out)) != "1.2.3+0.site1-1" {
		t.Errorf("deb version %q (%v), want 1.2.3+0.site1-1", out, err)
	}
	if out, err := exec.Command(rpmBin, "-qp", "--qf", "%{VERSION}-%{RELEASE}", rpm).Output(); err != nil || string(out) != "1.2.3+0.site1-1" {
		t.Errorf("rpm version %q (%v), want 1.2.3+0.site1-1", out, err)
	}

	sum := sha256.Sum256([]byte(patch))
	wantLine := hex.EncodeToString(sum[:]) + " clean site-note.patch: Say where this build comes from."
	list := debFile(t, dpkgDeb, deb, "."+release.SitePatchList)
	if !strings.Contains(list, wantLine) || !strings.Contains(list, "# upstream version: 1.2.3\n") {
		t.Errorf("patch list in the deb:\n%s\nwant the line %q", list, wantLine)
	}
	zr, err := gzip.NewReader(strings.NewReader(debFile(t, dpkgDeb, deb, "./usr/share/man/man8/notqmail.8.gz")))
	if err != nil {
		t.Fatal(err)
	}
	man, _ := io.ReadAll(zr)
	if !strings.Contains(string(man), added) {
		t.Errorf("the packaged man page lacks the patched line")
	}

	t.Run("installed in a Debian chroot", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("installing into a chroot needs root")
		}
		testpeer.Need(t, "mmdebstrap")
		cacheDir := os.Getenv("NOTQMAIL_MATRIX_CACHE")
		if cacheDir == "" {
			cacheDir = chroot.DefaultCacheDir
		}
		tar, _, err := chroot.Cache{Dir: cacheDir}.Tarball(ctx, chroot.Spec{Suite: "bookworm", Arch: "amd64"})
		if err != nil {
			t.Fatal(err)
		}
		r, err := chroot.Unpack(ctx, tar, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		b, err := os.ReadFile(deb)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(r.Path("/tmp/notqmail.deb"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if code, err := r.Run(ctx, nil, &out, "dpkg", "-i", "/tmp/notqmail.deb"); err != nil || code != 0 {
			t.Fatalf("dpkg -i: %d %v\n%s", code, err, out.String())
		}
		out.Reset()
		if code, err := r.Run(ctx, nil, &out, "sh", "-c",
			"dpkg-query -W -f '${Version}\\n' notqmail && cat "+release.SitePatchList); err != nil || code != 0 {
			t.Fatalf("query: %d %v\n%s", code, err, out.String())
		}
		if !strings.HasPrefix(out.String(), "1.2.3+0.site1-1\n") || !strings.Contains(out.String(), wantLine) {
			t.Fatalf("installed package:\n%s", out.String())
		}
		t.Logf("installed in bookworm:\n%s", out.String())
	})
}

// debFile returns one file of a deb's data.
func debFile(t *testing.T, dpkgDeb, deb, name string) string {
	t.Helper()
	fsys := exec.Command(dpkgDeb, "--fsys-tarfile", deb)
	tarOut, err := fsys.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	x := exec.Command(testpeer.Need(t, "tar"), "-xO", name)
	x.Stdin = tarOut
	var out, errb bytes.Buffer
	x.Stdout, x.Stderr = &out, &errb
	if err := fsys.Start(); err != nil {
		t.Fatal(err)
	}
	if err := x.Run(); err != nil {
		t.Fatalf("%s in %s: %v: %s", name, deb, err, errb.String())
	}
	fsys.Wait()
	return out.String()
}
