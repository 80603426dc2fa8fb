package fileid

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Every kind of change a cached reading must notice gives another ID; a stat alone
// does not.
func TestIDChanges(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Times one second apart, whatever the file system's time granularity.
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	os.Chtimes(p, base, base)
	id := func() ID {
		t.Helper()
		v, err := Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	first := id()
	if first == (ID{}) || id() != first {
		t.Fatalf("the same file gave %v, then %v", first, id())
	}
	// Same size, other content and time: an edit in place.
	os.WriteFile(p, []byte("two"), 0o644)
	os.Chtimes(p, base.Add(time.Second), base.Add(time.Second))
	edited := id()
	if edited == first {
		t.Error("an edit in place kept the ID")
	}
	// Another file renamed over it, with the same size and times.
	q := filepath.Join(dir, "g")
	os.WriteFile(q, []byte("two"), 0o644)
	os.Chtimes(q, base.Add(time.Second), base.Add(time.Second))
	if err := os.Rename(q, p); err != nil {
		t.Fatal(err)
	}
	if id() == edited {
		t.Error("a replacement by rename kept the ID")
	}
	if _, err := Stat(filepath.Join(dir, "missing")); err == nil {
		t.Error("Stat of a missing file did not fail")
	}
}
