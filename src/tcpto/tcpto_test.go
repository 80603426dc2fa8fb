package tcpto

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func newFile(t *testing.T, now *time.Time) File {
	p := filepath.Join(t.TempDir(), "tcpto")
	if err := os.WriteFile(p, make([]byte, Size), 0644); err != nil {
		t.Fatal(err)
	}
	return File{Path: p, Now: func() time.Time { return *now }, Jitter: func() int { return 0 }}
}

func TestFormatIsQmails(t *testing.T) {
	now := time.Unix(0x01020304, 0)
	f := newFile(t, &now)
	ip := netip.MustParseAddr("192.0.2.7")
	f.Note(ip, true)
	b, _ := os.ReadFile(f.Path)
	if len(b) != Size {
		t.Fatalf("size %d", len(b))
	}
	want := []byte{192, 0, 2, 7, 1, 0, 0, 0, 0x04, 0x03, 0x02, 0x01, 0, 0, 0, 0}
	if !bytes.Equal(b[:16], want) {
		t.Fatalf("record % x, want % x", b[:16], want)
	}
	if !bytes.Equal(b[16:], make([]byte, Size-16)) {
		t.Fatal("other records touched")
	}
}

func TestBlockedAfterTwoTimeouts(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	f := newFile(t, &now)
	ip := netip.MustParseAddr("192.0.2.1")
	f.Note(ip, true)
	if f.Blocked(ip) {
		t.Fatal("blocked after one timeout")
	}
	now = now.Add(60 * time.Second)
	f.Note(ip, true) // within two minutes: not counted
	if f.Blocked(ip) {
		t.Fatal("second timeout within 120s counted")
	}
	now = now.Add(61 * time.Second)
	f.Note(ip, true)
	if !f.Blocked(ip) {
		t.Fatal("not blocked after two timeouts")
	}
	if f.Blocked(netip.MustParseAddr("192.0.2.2")) {
		t.Fatal("another host blocked")
	}
	rs, err := f.Records()
	if err != nil || len(rs) != 1 || rs[0].Errors != 2 || rs[0].Addr != ip || !rs[0].When.Equal(now) {
		t.Fatalf("records %+v %v", rs, err)
	}
	// The hold is 60<<6 seconds with no jitter.
	now = now.Add(3839 * time.Second)
	if !f.Blocked(ip) {
		t.Fatal("released early")
	}
	now = now.Add(time.Second)
	if f.Blocked(ip) {
		t.Fatal("still blocked after the hold")
	}
	// A successful (or refused) connection clears the count.
	f.Note(ip, true)
	f.Note(ip, false)
	if rs, _ := f.Records(); len(rs) != 0 {
		t.Fatalf("records after success %+v", rs)
	}
}

func TestFullFileReplacesOldest(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	f := newFile(t, &now)
	for i := 0; i < Size/16; i++ {
		f.Note(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), true)
		now = now.Add(time.Second)
	}
	f.Note(netip.MustParseAddr("10.1.1.1"), true)
	b, _ := os.ReadFile(f.Path)
	if !bytes.Equal(b[:4], []byte{10, 1, 1, 1}) || binary.LittleEndian.Uint32(b[8:]) != uint32(now.Unix()) {
		t.Fatalf("oldest slot not reused: % x", b[:16])
	}
}

func TestIPv6AndMissingFile(t *testing.T) {
	now := time.Now()
	f := newFile(t, &now)
	f.Note(netip.MustParseAddr("2001:db8::1"), true)
	b, _ := os.ReadFile(f.Path)
	if !bytes.Equal(b, make([]byte, Size)) {
		t.Fatal("IPv6 host written into the IPv4 format")
	}
	g := File{Path: filepath.Join(t.TempDir(), "none")}
	g.Note(netip.MustParseAddr("192.0.2.1"), true)
	if g.Blocked(netip.MustParseAddr("192.0.2.1")) {
		t.Fatal("missing file blocks")
	}
	if _, err := os.Stat(g.Path); err == nil {
		t.Fatal("Note created the file")
	}
	if _, err := g.Records(); err == nil {
		t.Fatal("Records of a missing file: no error")
	}
}

func TestClear(t *testing.T) {
	now := time.Now()
	f := newFile(t, &now)
	f.Note(netip.MustParseAddr("192.0.2.1"), true)
	if err := f.Clear(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.Path)
	if !bytes.Equal(b, make([]byte, Size)) {
		t.Fatal("not cleared")
	}
}

func TestShortOrOddFile(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := filepath.Join(t.TempDir(), "tcpto")
	rec := []byte{192, 0, 2, 9, 3, 0, 0, 0}
	rec = binary.LittleEndian.AppendUint32(rec, uint32(now.Unix()))
	rec = append(rec, 0, 0, 0, 0, 1, 2, 3) // a partial second record is ignored
	os.WriteFile(p, rec, 0644)
	f := File{Path: p, Now: func() time.Time { return now }, Jitter: func() int { return 0 }}
	if !f.Blocked(netip.MustParseAddr("192.0.2.9")) {
		t.Fatal("record in a short file ignored")
	}
}
