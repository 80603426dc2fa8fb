package bench

import (
	"os"
	"testing"
)

func TestParseDiskStat(t *testing.T) {
	// A line as Linux 6.x writes it (17 fields).
	c, err := parseDiskStat(" 3005678   473094 62625434 11798510 119819507 22379620 1234011504 78910031        0 10547488 104226995 15906492     7201 359330176 11269496 12524459  2248957\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.writes != 119819507 || c.sectors != 1234011504 || c.flushes != 12524459 {
		t.Errorf("got %+v, want writes 119819507 sectors 1234011504 flushes 12524459", c)
	}
	// Before Linux 5.5 there are no flush counters: no figures rather than wrong ones.
	if _, err := parseDiskStat("1 2 3 4 5 6 7 8 9 10 11\n"); err == nil {
		t.Error("an 11-field line parsed")
	}
	if _, err := parseDiskStat("1 2 3 4 5 6 x 8 9 10 11 12 13 14 15 16 17\n"); err == nil {
		t.Error("a bad number parsed")
	}
}

func TestDiskStatPathFollowsDirectory(t *testing.T) {
	p := diskStatPath(t.TempDir())
	if p == "" {
		t.Skip("the temporary directory is on no block device here")
	}
	before, ok := readDisk(p)
	if !ok {
		t.Fatalf("%s: unreadable", p)
	}
	// A missing directory is looked up by its nearest existing parent.
	if q := diskStatPath(t.TempDir() + "/not/yet/there"); q != p {
		t.Errorf("missing directory: %q, want %q", q, p)
	}
	f, err := os.CreateTemp(t.TempDir(), "w")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, 64<<10))
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	after, _ := readDisk(p)
	if after.sectors <= before.sectors {
		t.Errorf("64 KiB written and synced, sectors written %d -> %d", before.sectors, after.sectors)
	}
}
