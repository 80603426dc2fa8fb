package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// diskCounters are a block device's cumulative write figures from its stat file
// (Linux's Documentation/block/stat.rst): what the MTAs' fsyncs and journal commits
// cost the disk, which CPU time does not show.
type diskCounters struct {
	writes  uint64 // write requests completed, after the kernel merged adjacent blocks
	sectors uint64 // 512-byte sectors written
	flushes uint64 // cache flushes completed (Linux 5.5 and later)
}

// diskStatPath is the stat file of the block device holding dir, or "" when there is
// none (a file system on no block device, such as tmpfs or an overlay).
func diskStatPath(dir string) string {
	var st syscall.Stat_t
	for {
		if err := syscall.Stat(dir, &st); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
	p := filepath.Join("/sys/dev/block", majorMinor(st.Dev), "stat")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// majorMinor names device dev as /sys/dev/block and /proc/self/mountinfo do: "254:0".
func majorMinor(dev uint64) string {
	return fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev))
}

// readDisk reads the counters from a stat file; ok is false when there are none.
func readDisk(path string) (c diskCounters, ok bool) {
	if path == "" {
		return c, false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, false
	}
	c, err = parseDiskStat(string(b))
	return c, err == nil
}

// parseDiskStat parses a block device's stat line: field 5 (from 1) is write
// requests completed, field 7 sectors written, field 16 flushes completed.
func parseDiskStat(s string) (diskCounters, error) {
	f := strings.Fields(s)
	if len(f) < 16 {
		return diskCounters{}, fmt.Errorf("disk stat: %d fields, want at least 16 (Linux 5.5 or later)", len(f))
	}
	var c diskCounters
	var err error
	if c.writes, err = strconv.ParseUint(f[4], 10, 64); err != nil {
		return c, fmt.Errorf("disk stat: writes completed: %v", err)
	}
	if c.sectors, err = strconv.ParseUint(f[6], 10, 64); err != nil {
		return c, fmt.Errorf("disk stat: sectors written: %v", err)
	}
	if c.flushes, err = strconv.ParseUint(f[15], 10, 64); err != nil {
		return c, fmt.Errorf("disk stat: flushes: %v", err)
	}
	return c, nil
}
