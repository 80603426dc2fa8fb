package chroot

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/testpeer"
)

func TestKeyDependsOnContents(t *testing.T) {
	a := Spec{Suite: "bookworm", Arch: "amd64"}
	b := Spec{Suite: "bookworm", Arch: "amd64", Include: []string{"rpm"}}
	if a.Key() == b.Key() || !strings.HasPrefix(a.Key(), "bookworm-amd64-") {
		t.Fatalf("keys %q %q", a.Key(), b.Key())
	}
	if a.Key() != (Spec{Suite: "bookworm", Arch: "amd64", Mirror: DefaultMirror}).Key() {
		t.Fatal("the default mirror spelled out gives another key")
	}
}

func TestTarballNeedsSuite(t *testing.T) {
	if _, _, err := (Cache{Dir: t.TempDir()}).Tarball(context.Background(), Spec{Arch: "amd64"}); err == nil {
		t.Fatal("no error for a spec without a suite")
	}
}

// CacheDirFromEnv lets the tests share the matrix's cache, so a root is built once.
func testCache(t *testing.T) Cache {
	dir := os.Getenv("NOTQMAIL_MATRIX_CACHE")
	if dir == "" {
		dir = DefaultCacheDir
	}
	return Cache{Dir: dir}
}

// A real bookworm root: built (or taken from the cache), unpacked, commands run in it
// with their exit codes, daemons left behind killed, and the directory removed.
func TestRootLifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("building and entering a chroot needs root")
	}
	testpeer.Need(t, "mmdebstrap")
	ctx := context.Background()
	tar, _, err := testCache(t).Tarball(ctx, Spec{Suite: "bookworm", Arch: HostArch()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Unpack(ctx, tar, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			r.Close()
		}
	}()
	var out bytes.Buffer
	code, err := r.Run(ctx, []string{"X=from-env"}, &out, "sh", "-c", "cat /etc/debian_version; echo $X; exit 7")
	if err != nil || code != 7 {
		t.Fatalf("Run = %d, %v; want 7\n%s", code, err, out.String())
	}
	if !strings.HasPrefix(out.String(), "12.") || !strings.Contains(out.String(), "from-env") {
		t.Fatalf("output %q: want bookworm's version and the environment", out.String())
	}
	out.Reset()
	if code, err := r.Run(ctx, nil, &out, "sh", "-c", "setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo started"); err != nil || code != 0 {
		t.Fatalf("background start: %d %v %s", code, err, out.String())
	}
	// An interrupted run leaves its root behind; Sweep kills, unmounts and removes it.
	if err := Sweep(filepath.Dir(r.Dir)); err != nil {
		t.Fatal(err)
	}
	closed = true
	if _, err := os.Stat(r.Dir); !os.IsNotExist(err) {
		t.Fatalf("root %s still there after Close: %v", r.Dir, err)
	}
	if m := mountsUnder(r.Dir); len(m) > 0 {
		t.Fatalf("still mounted: %v", m)
	}
}

func TestCredentialsFlag(t *testing.T) {
	debian := "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\n"
	if hasCredentialsFlag(debian) {
		t.Error("flags PF read as having credentials")
	}
	if !hasCredentialsFlag(strings.Replace(debian, "flags: PF", "flags: POCF", 1)) {
		t.Error("flags POCF read as lacking credentials")
	}
	if hasCredentialsFlag("") || SetuidEmulated("mips") {
		t.Error("no entry read as having credentials")
	}
}

func TestUnpackDirOutsideWorkAndPerWork(t *testing.T) {
	c := Cache{Dir: "/var/cache/x"}
	a, b := c.UnpackDir("/src/build/matrix"), c.UnpackDir("/tmp/other")
	if !strings.HasPrefix(a, "/var/cache/x/unpacked/") || a == b {
		t.Errorf("UnpackDir = %q, %q", a, b)
	}
	if a != c.UnpackDir("/src/build/matrix") {
		t.Error("UnpackDir is not stable")
	}
	if got := (Cache{}).UnpackDir("/w"); !strings.HasPrefix(got, DefaultCacheDir+"/unpacked/") {
		t.Errorf("default UnpackDir = %q", got)
	}
}
