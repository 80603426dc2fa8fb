package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// FileSystem says what the MTAs' queues and maildirs were on. The figures depend on it
// more than on anything else but the CPU: on ext4 without a journal an fsync writes
// the file's own blocks, where syncfs writes every dirty metadata block; with a
// journal both end in a commit of the running transaction.
type FileSystem struct {
	Type    string `json:"type"`              // ext4, xfs, tmpfs, ...
	Source  string `json:"source"`            // /dev/vda
	Options string `json:"options"`           // the mount's options, as in /proc/self/mountinfo
	Super   string `json:"super_options"`     // the file system's own (discard, data=, ...)
	Journal string `json:"journal,omitempty"` // ext3/ext4: "yes" or "no"; "" if unknown or not ext
}

func (f FileSystem) String() string {
	if f.Type == "" {
		return "unknown"
	}
	s := f.Type + " on " + f.Source
	switch f.Journal {
	case "yes":
		s += ", with a journal"
	case "no":
		s += ", without a journal"
	}
	return s + " (mount " + f.Options + "; file system " + f.Super + ")"
}

// fileSystemOf describes the file system holding dir, reading proc and sys (normally
// "/proc" and "/sys").
func fileSystemOf(dir, proc, sys string) (FileSystem, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return FileSystem{}, err
	}
	mi, err := os.ReadFile(filepath.Join(proc, "self", "mountinfo"))
	if err != nil {
		return FileSystem{}, err
	}
	fs, ok := findMount(string(mi), unix.Major(st.Dev), unix.Minor(st.Dev))
	if !ok {
		return FileSystem{}, fmt.Errorf("no mount of device %s in mountinfo", majorMinor(st.Dev))
	}
	if fs.Type == "ext3" || fs.Type == "ext4" {
		fs.Journal = journal(proc, sys, st.Dev)
	}
	return fs, nil
}

// journal says whether the ext3/ext4 file system on device dev has a journal
// running: "yes", "no", or "" when that cannot be told. jbd2 lists each journal it
// runs in proc/fs/jbd2 as <kernel device name>-<journal inode>; the kernel's name
// (dm-0, not the /dev/mapper name that mountinfo shows) is the one sys/dev/block
// links to.
func journal(proc, sys string, dev uint64) string {
	link, err := os.Readlink(filepath.Join(sys, "dev", "block", majorMinor(dev)))
	if err != nil {
		return ""
	}
	jbd2 := filepath.Join(proc, "fs", "jbd2")
	if _, err := os.Stat(jbd2); err != nil {
		return "" // no jbd2 loaded, or no /proc: nothing to go by
	}
	if m, _ := filepath.Glob(filepath.Join(jbd2, filepath.Base(link)+"-*")); len(m) > 0 {
		return "yes"
	}
	return "no"
}

// findMount finds the mount of device major:minor in a mountinfo text
// (proc_pid_mountinfo(5)): "36 35 98:0 / /mnt rw,noatime master:1 - ext3 /dev/root rw".
// When a device is mounted more than once, the first line with its root "/" wins.
func findMount(mountinfo string, major, minor uint32) (FileSystem, bool) {
	want := majorMinor(unix.Mkdev(major, minor))
	var found FileSystem
	ok := false
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, cut := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !cut || len(f) < 6 || len(g) < 2 || f[2] != want {
			continue
		}
		fs := FileSystem{Type: g[0], Source: g[1], Options: f[5]}
		if len(g) > 2 {
			fs.Super = g[2]
		}
		if f[3] == "/" {
			return fs, true
		}
		if !ok {
			found, ok = fs, true
		}
	}
	return found, ok
}
