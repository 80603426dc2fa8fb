package bench

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const sampleMountinfo = `22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict
44 27 7:0 /img /srv/bind rw,relatime shared:5 - ext4 /dev/loop0 rw
45 27 7:0 / /mnt/jb rw,noatime shared:6 - ext4 /dev/loop0 rw,data=ordered
46 27 0:40 / /tmp rw - tmpfs tmpfs rw,size=100k
`

func TestFindMount(t *testing.T) {
	for _, c := range []struct {
		major, minor uint32
		want         FileSystem
		ok           bool
	}{
		{254, 0, FileSystem{Type: "ext4", Source: "/dev/vda", Options: "rw,relatime", Super: "rw,discard,resv_strict"}, true},
		// Mounted twice: the mount of the file system's root wins over a bind mount
		// of a subdirectory, and optional fields (shared:6) are skipped.
		{7, 0, FileSystem{Type: "ext4", Source: "/dev/loop0", Options: "rw,noatime", Super: "rw,data=ordered"}, true},
		{0, 40, FileSystem{Type: "tmpfs", Source: "tmpfs", Options: "rw", Super: "rw,size=100k"}, true},
		{8, 1, FileSystem{}, false},
	} {
		got, ok := findMount(sampleMountinfo, c.major, c.minor)
		if ok != c.ok || got != c.want {
			t.Errorf("findMount(%d:%d) = %+v, %v; want %+v, %v", c.major, c.minor, got, ok, c.want, c.ok)
		}
	}
	// A truncated or garbled line is skipped, not a panic.
	if _, ok := findMount("254:0 /\n27 1 254:0 / / rw - ext4\n", 254, 0); ok {
		t.Error("findMount accepted a line without a source")
	}
}

// TestFileSystemOf reads a fake /proc and /sys: the mount of a real directory's
// device, and the journal from jbd2's list, under the kernel's name for the device
// (dm-3), not the name mountinfo shows (/dev/mapper/vg-mail).
func TestFileSystemOf(t *testing.T) {
	dir := t.TempDir()
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	dev := strconv.Itoa(int(unix.Major(st.Dev))) + ":" + strconv.Itoa(int(unix.Minor(st.Dev)))
	proc, sys := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(proc, "self"), 0o755)
	os.MkdirAll(filepath.Join(sys, "dev", "block"), 0o755)
	line := "27 1 " + dev + " / / rw,relatime - ext4 /dev/mapper/vg-mail rw,discard\n"
	if err := os.WriteFile(filepath.Join(proc, "self", "mountinfo"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(what, want string) {
		t.Helper()
		fs, err := fileSystemOf(dir, proc, sys)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if fs.Journal != want {
			t.Errorf("%s: journal %q, want %q", what, fs.Journal, want)
		}
	}
	check("no sys entry for the device", "")
	if err := os.Symlink("../../devices/virtual/block/dm-3", filepath.Join(sys, "dev", "block", dev)); err != nil {
		t.Fatal(err)
	}
	check("no proc/fs/jbd2", "")
	os.MkdirAll(filepath.Join(proc, "fs", "jbd2", "vda-8"), 0o755)
	os.MkdirAll(filepath.Join(proc, "fs", "jbd2", "vg-mail-8"), 0o755) // the wrong name
	check("another device's journal", "no")
	fs, _ := fileSystemOf(dir, proc, sys)
	if want := "ext4 on /dev/mapper/vg-mail, without a journal (mount rw,relatime; file system rw,discard)"; fs.String() != want {
		t.Errorf("String() = %q, want %q", fs.String(), want)
	}
	os.Mkdir(filepath.Join(proc, "fs", "jbd2", "dm-3-8"), 0o755)
	check("jbd2/dm-3-8", "yes")

	if _, err := fileSystemOf(filepath.Join(dir, "missing"), proc, sys); err == nil {
		t.Error("fileSystemOf of a missing directory: no error")
	}
	os.WriteFile(filepath.Join(proc, "self", "mountinfo"), []byte("1 1 1:1 / / rw - ext4 /dev/x rw\n"), 0o644)
	if _, err := fileSystemOf(dir, proc, sys); err == nil {
		t.Error("device not in mountinfo: no error")
	}
}

// TestFileSystemOfHere finds the real mount of a temporary directory.
func TestFileSystemOfHere(t *testing.T) {
	fs, err := fileSystemOf(t.TempDir(), "/proc", "/sys")
	if err != nil {
		t.Fatal(err)
	}
	if fs.Type == "" || fs.Source == "" || fs.Options == "" {
		t.Errorf("incomplete: %+v", fs)
	}
	t.Log(fs)
}
