// Package chroot builds Debian roots with mmdebstrap, keeps each one as a tarball in a
// cache so later runs skip the download, unpacks a fresh copy per test and runs
// commands inside it with chroot(8). Foreign architectures run under qemu-user through
// the kernel's binfmt_misc. Everything here needs root.
package chroot

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Spec says which root to build.
type Spec struct {
	Suite   string   // bookworm, trixie, sid, ...
	Arch    string   // Debian architecture: amd64, arm64
	Mirror  string   // default DefaultMirror
	Include []string // extra packages
}

// DefaultMirror is Debian's archive.
const DefaultMirror = "http://deb.debian.org/debian"

func (s Spec) mirror() string {
	if s.Mirror != "" {
		return s.Mirror
	}
	return DefaultMirror
}

// Key names the cached tarball: the suite, the architecture and a hash of everything
// else that shapes the root, so a changed package list builds a new one.
func (s Spec) Key() string {
	h := sha256.Sum256([]byte(s.mirror() + "\n" + strings.Join(s.Include, ",")))
	return fmt.Sprintf("%s-%s-%s", s.Suite, s.Arch, hex.EncodeToString(h[:])[:12])
}

// Cache holds built roots as tarballs.
type Cache struct {
	Dir    string        // where the tarballs live
	MaxAge time.Duration // rebuild tarballs older than this; 0 keeps them forever
	Log    io.Writer     // progress and the builder's output
}

// DefaultCacheDir is used when none is given: outside the source tree, so `mage clean`
// does not throw away roots that took minutes to build.
const DefaultCacheDir = "/var/cache/notqmail-matrix"

// dir is the cache directory, DefaultCacheDir when none is set.
func (c Cache) dir() string {
	if c.Dir == "" {
		return DefaultCacheDir
	}
	return c.Dir
}

// UnpackDir is where a run whose scratch directory is work unpacks its roots: beside the
// cache, outside the source tree, because a root with /proc mounted inside the module
// would be walked by `go vet ./...` and `go test ./...` (and removed by `mage clean`
// while mounted). Each work directory gets its own, so one run's Sweep never takes
// another's roots.
func (c Cache) UnpackDir(work string) string {
	if abs, err := filepath.Abs(work); err == nil {
		work = abs
	}
	sum := sha256.Sum256([]byte(work))
	return filepath.Join(c.dir(), "unpacked", hex.EncodeToString(sum[:6]))
}

// Tarball returns the cached tarball for s, building it with mmdebstrap when it is
// missing or too old. It reports whether it had to build.
func (c Cache) Tarball(ctx context.Context, s Spec) (string, bool, error) {
	if s.Suite == "" || s.Arch == "" {
		return "", false, errors.New("chroot: a root needs a suite and an architecture")
	}
	dir := c.dir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, err
	}
	tar := filepath.Join(dir, s.Key()+".tar")
	// Test packages run in parallel and may want the same root: one builds it, the
	// others wait for it and then take it from the cache.
	lock, err := os.OpenFile(filepath.Join(dir, s.Key()+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", false, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", false, fmt.Errorf("locking the root cache: %w", err)
	}
	if st, err := os.Stat(tar); err == nil && st.Mode().IsRegular() && st.Size() > 0 && (c.MaxAge == 0 || time.Since(st.ModTime()) < c.MaxAge) {
		return tar, false, nil
	}
	if err := EnableForeign(ctx, s.Arch, c.log()); err != nil {
		return "", false, err
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return "", false, errors.New("chroot: mmdebstrap not found (apt-get install mmdebstrap)")
	}
	// Built under a temporary name and renamed, so an interrupted build never leaves a
	// truncated tarball that later runs would take for a good one.
	// mmdebstrap picks its output format from the name: keep the .tar ending.
	tmp := filepath.Join(dir, s.Key()+".part.tar")
	os.Remove(tmp)
	run := func(extra ...string) (string, error) {
		args := []string{"--mode=root", "--variant=minbase", "--architectures=" + s.Arch}
		args = append(args, extra...)
		if len(s.Include) > 0 {
			args = append(args, "--include="+strings.Join(s.Include, ","))
		}
		args = append(args, s.Suite, tmp, s.mirror())
		fmt.Fprintf(c.log(), "chroot: mmdebstrap %s\n", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
		var tail tailBuffer
		cmd.Stdout = io.MultiWriter(c.log(), &tail)
		cmd.Stderr = cmd.Stdout
		err := cmd.Run()
		return tail.String(), err
	}
	out, err := run()
	if err != nil && strings.Contains(out, "is expired") {
		// A mirror that is a frozen copy serves suites whose short-lived Release files
		// (sid's last a week) have expired by the clock here: the signature still
		// holds, only the freshness check is waived.
		fmt.Fprintf(c.log(), "chroot: %s's Release file has expired on this mirror; retrying without the Valid-Until check\n", s.Suite)
		os.Remove(tmp)
		out, err = run("--aptopt=Acquire::Check-Valid-Until \"false\"")
	}
	if err != nil {
		os.Remove(tmp)
		return "", false, fmt.Errorf("mmdebstrap %s %s: %v\n%s", s.Suite, s.Arch, err, out)
	}
	if err := os.Rename(tmp, tar); err != nil {
		return "", false, err
	}
	return tar, true, nil
}

func (c Cache) log() io.Writer {
	if c.Log == nil {
		return io.Discard
	}
	return c.Log
}

// debArch maps Go's architecture names to Debian's.
func debArch(goarch string) string {
	switch goarch {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	}
	return goarch
}

// HostArch is this machine's Debian architecture.
func HostArch() string { return debArch(runtime.GOARCH) }

// qemuHandler names the binfmt handler Debian's qemu-user-static registers per
// architecture.
var qemuHandler = map[string]string{
	"arm64":   "qemu-aarch64",
	"armhf":   "qemu-arm",
	"i386":    "qemu-i386",
	"ppc64el": "qemu-ppc64le",
	"s390x":   "qemu-s390x",
	"riscv64": "qemu-riscv64",
	"amd64":   "qemu-x86_64",
}

// EnableForeign makes binaries of arch runnable here: nothing to do for the host's
// own architecture; otherwise binfmt_misc is mounted and qemu's handler enabled
// (packages qemu-user-static and binfmt-support), then arch-test must agree.
func EnableForeign(ctx context.Context, arch string, log io.Writer) error {
	if arch == HostArch() {
		return nil
	}
	handler, ok := qemuHandler[arch]
	if !ok {
		return fmt.Errorf("chroot: no qemu-user handler known for %s", arch)
	}
	if ArchRuns(ctx, arch) == nil {
		return nil
	}
	if _, err := os.Stat("/proc/sys/fs/binfmt_misc/status"); err != nil {
		if out, err := exec.CommandContext(ctx, "mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc").CombinedOutput(); err != nil {
			return fmt.Errorf("chroot: mounting binfmt_misc: %v: %s", err, bytes.TrimSpace(out))
		}
	}
	if out, err := exec.CommandContext(ctx, "update-binfmts", "--enable", handler).CombinedOutput(); err != nil {
		fmt.Fprintf(log, "chroot: update-binfmts --enable %s: %v: %s\n", handler, err, bytes.TrimSpace(out))
	}
	return ArchRuns(ctx, arch)
}

// ArchRuns asks arch-test whether binaries of arch run on this machine.
func ArchRuns(ctx context.Context, arch string) error {
	if _, err := exec.LookPath("arch-test"); err != nil {
		return errors.New("chroot: arch-test not found (apt-get install arch-test)")
	}
	out, err := exec.CommandContext(ctx, "arch-test", arch).CombinedOutput()
	if err != nil {
		return fmt.Errorf("chroot: %s binaries do not run here (arch-test: %s); install qemu-user-static and binfmt-support", arch, bytes.TrimSpace(out))
	}
	return nil
}

// Root is an unpacked root with /proc mounted.
type Root struct {
	Dir     string
	mounted []string
}

// Unpack extracts tarball into a new directory under parent and mounts /proc in it.
func Unpack(ctx context.Context, tarball, parent string) (*Root, error) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(parent, "root-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	r := &Root{Dir: dir}
	// tar(1) rather than archive/tar: it restores device nodes, owners and xattrs as
	// the root needs them.
	if out, err := exec.CommandContext(ctx, "tar", "-C", dir, "--numeric-owner", "-xf", tarball).CombinedOutput(); err != nil {
		r.Close()
		return nil, fmt.Errorf("unpacking %s: %v: %s", tarball, err, bytes.TrimSpace(out))
	}
	proc := filepath.Join(dir, "proc")
	if err := os.MkdirAll(proc, 0o555); err != nil {
		r.Close()
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, "mount", "-t", "proc", "proc", proc).CombinedOutput(); err != nil {
		r.Close()
		return nil, fmt.Errorf("mounting /proc in the root: %v: %s", err, bytes.TrimSpace(out))
	}
	r.mounted = append(r.mounted, proc)
	return r, nil
}

// Path returns the host path of p inside the root.
func (r *Root) Path(p string) string { return filepath.Join(r.Dir, filepath.Clean("/"+p)) }

// Run runs args inside the root with a clean environment plus env, writing its output
// to out, and returns the exit status (-1 when it was killed or could not start).
func (r *Root) Run(ctx context.Context, env []string, out io.Writer, args ...string) (int, error) {
	full := []string{r.Dir, "/usr/bin/env", "-i",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C"}
	full = append(full, env...)
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, "chroot", full...)
	cmd.Stdout, cmd.Stderr = out, out
	// The kit starts daemons in the background: don't wait for their copies of our
	// output pipe once the command itself has exited.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

// KillAll kills every process whose root directory is inside this root, so that
// daemons a test left behind do not outlive it or keep its mounts busy.
func (r *Root) KillAll() {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		root, err := os.Readlink("/proc/" + pid + "/root")
		if err != nil || (root != r.Dir && !strings.HasPrefix(root, r.Dir+"/")) {
			continue
		}
		if p, err := os.FindProcess(atoi(pid)); err == nil {
			p.Kill()
		}
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// Close kills what still runs in the root, unmounts and removes it. It refuses to
// remove a directory that still has something mounted under it: deleting through a
// mount would reach outside the root.
func (r *Root) Close() error {
	r.KillAll()
	var errs []error
	for i := len(r.mounted) - 1; i >= 0; i-- {
		if out, err := exec.Command("umount", r.mounted[i]).CombinedOutput(); err != nil {
			// Processes may still be exiting: detach instead.
			if out2, err2 := exec.Command("umount", "-l", r.mounted[i]).CombinedOutput(); err2 != nil {
				errs = append(errs, fmt.Errorf("umount %s: %v: %s %s", r.mounted[i], err, out, out2))
			}
		}
	}
	r.mounted = nil
	if m := mountsUnder(r.Dir); len(m) > 0 {
		return fmt.Errorf("not removing %s: still mounted: %s", r.Dir, strings.Join(m, " "))
	}
	if err := os.RemoveAll(r.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return []string{"(cannot read /proc/self/mounts)"}
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && (fields[1] == dir || strings.HasPrefix(fields[1], dir+"/")) {
			out = append(out, fields[1])
		}
	}
	return out
}

// tailBuffer keeps the last 4 KiB written to it, for error messages.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

// SetuidEmulated says whether setuid programs of a foreign arch keep their privileges
// under qemu-user: only when the binfmt handler is registered with the credentials
// flag (C). Debian's qemu-user-static registers it without, so a setuid binary such
// as qmail-queue runs with its caller's ids there.
func SetuidEmulated(arch string) bool {
	handler, ok := qemuHandler[arch]
	if !ok {
		return false
	}
	b, err := os.ReadFile("/proc/sys/fs/binfmt_misc/" + handler)
	if err != nil {
		return false
	}
	return hasCredentialsFlag(string(b))
}

// hasCredentialsFlag reads a /proc/sys/fs/binfmt_misc entry's flags line.
func hasCredentialsFlag(entry string) bool {
	for _, line := range strings.Split(entry, "\n") {
		if flags, ok := strings.CutPrefix(line, "flags: "); ok {
			return strings.Contains(flags, "C")
		}
	}
	return false
}

// Sweep removes roots an interrupted run left under parent: it kills what still runs
// in each, unmounts its /proc and removes it, the same way Close does.
func Sweep(parent string) error {
	ents, err := os.ReadDir(parent)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "root-") {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		r := &Root{Dir: dir, mounted: mountsUnder(dir)}
		if err := r.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
