package cdb

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/notqmail/notqmail/src/testpeer"
)

// testRecords has many keys, duplicate keys, an empty key, empty data and binary bytes.
func testRecords() []Record {
	var rs []Record
	for i := range 1000 {
		rs = append(rs, Record{Key: fmt.Appendf(nil, "key%d", i), Data: fmt.Appendf(nil, "value %d", i*i)})
	}
	rs = append(rs,
		Record{Key: []byte("dup"), Data: []byte("first")},
		Record{Key: []byte(""), Data: []byte("empty key")},
		Record{Key: []byte("dup"), Data: []byte("second")},
		Record{Key: []byte("nodata"), Data: []byte{}},
		Record{Key: []byte("bin\x00\xff\n:->"), Data: []byte("\x00\x01\x02\xfe\xff\n\n+1,2:")},
		Record{Key: []byte("dup"), Data: []byte("third")},
	)
	return rs
}

func writeRecords(t testing.TB, path string, rs []Record) {
	t.Helper()
	err := WriteFile(path, func(w *Writer) error {
		for _, r := range rs {
			if err := w.Add(r.Key, r.Data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func values(t testing.TB, r *Reader, key string) []string {
	t.Helper()
	var out []string
	for v, err := range r.Values([]byte(key)) {
		if err != nil {
			t.Fatalf("Values(%q): %v", key, err)
		}
		out = append(out, string(v))
	}
	return out
}

func checkRecords(t testing.TB, path string, rs []Record) {
	t.Helper()
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := map[string][]string{}
	for _, rec := range rs {
		want[string(rec.Key)] = append(want[string(rec.Key)], string(rec.Data))
	}
	for k, vs := range want {
		got := values(t, r, k)
		if fmt.Sprint(got) != fmt.Sprint(vs) {
			t.Errorf("Values(%q) = %q, want %q", k, got, vs)
		}
		v, ok, err := r.Get([]byte(k))
		if err != nil || !ok || string(v) != vs[0] {
			t.Errorf("Get(%q) = %q, %v, %v; want %q", k, v, ok, err, vs[0])
		}
	}
	if v, ok, err := r.Get([]byte("missing")); ok || err != nil || v != nil {
		t.Errorf("Get(missing) = %q, %v, %v", v, ok, err)
	}
	i := 0
	for rec, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		if i >= len(rs) || !bytes.Equal(rec.Key, rs[i].Key) || !bytes.Equal(rec.Data, rs[i].Data) {
			t.Fatalf("All record %d = %q/%q", i, rec.Key, rec.Data)
		}
		i++
	}
	if i != len(rs) {
		t.Errorf("All gave %d records, want %d", i, len(rs))
	}
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.cdb")
	rs := testRecords()
	writeRecords(t, path, rs)
	checkRecords(t, path, rs)
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

func TestEmptyDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.cdb")
	writeRecords(t, path, nil)
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != headerSize {
		t.Fatalf("empty cdb: %v, size %d", err, fi.Size())
	}
	checkRecords(t, path, nil)
}

func TestCreateClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.cdb")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add([]byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Add([]byte("b"), nil); err == nil {
		t.Error("Add after Close succeeded")
	}
	checkRecords(t, path, []Record{{Key: []byte("a"), Data: []byte("1")}})
}

func TestWriteFileErrorKeepsOld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keep.cdb")
	old := []Record{{Key: []byte("old"), Data: []byte("yes")}}
	writeRecords(t, path, old)
	boom := errors.New("boom")
	err := WriteFile(path, func(w *Writer) error {
		w.Add([]byte("new"), []byte("no"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("WriteFile error = %v, want boom", err)
	}
	checkRecords(t, path, old)
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

func TestWriteFileVia(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "morercpthosts.cdb")
	err := WriteFileVia(path, filepath.Join(dir, "morercpthosts.tmp"), func(w *Writer) error {
		return w.Add([]byte("example.org"), nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	checkRecords(t, path, []Record{{Key: []byte("example.org"), Data: []byte{}}})
	if err := WriteFileVia(path, filepath.Join(t.TempDir(), "x.tmp"), func(*Writer) error { return nil }); err == nil {
		t.Error("a temporary file in another directory was accepted")
	}
}

// limitedFile fails writes past a size, like a full disk.
type limitedFile struct {
	*os.File
	limit int64
}

func (l limitedFile) Write(b []byte) (int, error) {
	off, _ := l.Seek(0, 1)
	if off+int64(len(b)) > l.limit {
		return 0, errors.New("no space left on device")
	}
	return l.File.Write(b)
}

func TestWriteErrorIsReported(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "full.cdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := NewWriter(limitedFile{f, 100 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var addErr error
	for i := 0; i < 100000 && addErr == nil; i++ {
		addErr = w.Add(fmt.Appendf(nil, "k%d", i), bytes.Repeat([]byte("x"), 100))
	}
	if err := w.Finish(); err == nil {
		t.Fatal("Finish succeeded on a full disk")
	}
}

// cdbMakeInput renders records in cdbmake's input format, which tinycdb's cdb -c reads
// and cdb -d writes.
func cdbMakeInput(rs []Record) []byte {
	var b bytes.Buffer
	for _, r := range rs {
		fmt.Fprintf(&b, "+%d,%d:%s->%s\n", len(r.Key), len(r.Data), r.Key, r.Data)
	}
	b.WriteString("\n")
	return b.Bytes()
}

func TestTinycdbReadsOurs(t *testing.T) {
	tool := testpeer.Need(t, "cdb")
	path := filepath.Join(t.TempDir(), "ours.cdb")
	rs := testRecords()
	writeRecords(t, path, rs)

	out, err := exec.Command(tool, "-d", path).Output()
	if err != nil {
		t.Fatalf("cdb -d: %v", err)
	}
	if want := cdbMakeInput(rs); !bytes.Equal(out, want) {
		t.Errorf("cdb -d dump differs from what we wrote:\n%.300q\nwant\n%.300q", out, want)
	}
	for _, q := range []struct{ key, want string }{
		{"key0", "value 0"}, {"key999", "value 998001"}, {"dup", "first"}, {"", "empty key"}, {"nodata", ""},
	} {
		out, err := exec.Command(tool, "-q", "-n", "1", path, q.key).Output()
		if err != nil || string(out) != q.want {
			t.Errorf("cdb -q %q = %q, %v; want %q", q.key, out, err, q.want)
		}
	}
	out, err = exec.Command(tool, "-q", "-m", path, "dup").Output()
	if err != nil || string(out) != "first\nsecond\nthird\n" {
		t.Errorf("cdb -q -m dup = %q, %v", out, err)
	}
	out, err = exec.Command(tool, "-q", "-n", "3", path, "dup").Output()
	if err != nil || string(out) != "third" {
		t.Errorf("cdb -q -n 3 dup = %q, %v", out, err)
	}
	if err := exec.Command(tool, "-q", path, "missing").Run(); err == nil {
		t.Error("cdb -q found a key we never wrote")
	}
}

func TestWeReadTinycdbs(t *testing.T) {
	tool := testpeer.Need(t, "cdb")
	dir := t.TempDir()
	theirs := filepath.Join(dir, "theirs.cdb")
	rs := testRecords()
	cmd := exec.Command(tool, "-c", theirs)
	cmd.Stdin = bytes.NewReader(cdbMakeInput(rs))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cdb -c: %v: %s", err, out)
	}
	checkRecords(t, theirs, rs)

	// Both makers put slots in insertion order with linear probing, so the files are
	// byte for byte the same.
	ours := filepath.Join(dir, "ours.cdb")
	writeRecords(t, ours, rs)
	a, _ := os.ReadFile(theirs)
	b, _ := os.ReadFile(ours)
	if !bytes.Equal(a, b) {
		t.Errorf("tinycdb's file (%d bytes) and ours (%d bytes) differ", len(a), len(b))
	}
}
