package cdb

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// build makes a valid cdb in memory.
func build(t testing.TB, rs []Record) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "b.cdb")
	writeRecords(t, path, rs)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func reader(t *testing.T, b []byte) (*Reader, error) {
	t.Helper()
	return NewReader(bytes.NewReader(b), int64(len(b)))
}

func isFormatError(err error) bool {
	var fe *FormatError
	return errors.As(err, &fe)
}

// exercise runs every read path and returns the first error.
func exercise(r *Reader, keys ...string) error {
	for _, k := range keys {
		for _, err := range r.Values([]byte(k)) {
			if err != nil {
				return err
			}
		}
	}
	for _, err := range r.All() {
		if err != nil {
			return err
		}
	}
	return nil
}

func TestShortHeader(t *testing.T) {
	for _, n := range []int{0, 1, 2047} {
		if _, err := reader(t, make([]byte, n)); !isFormatError(err) {
			t.Errorf("%d-byte file: err = %v, want a FormatError", n, err)
		}
	}
}

func TestTruncated(t *testing.T) {
	full := build(t, []Record{{Key: []byte("alpha"), Data: []byte("one")}, {Key: []byte("beta"), Data: []byte("two")}})
	for n := headerSize; n < len(full); n++ {
		r, err := reader(t, full[:n])
		if err != nil {
			t.Fatalf("truncated to %d: %v", n, err)
		}
		if err := exercise(r, "alpha", "beta"); !isFormatError(err) {
			t.Errorf("truncated to %d: err = %v, want a FormatError", n, err)
		}
	}
}

func TestTableOutOfRange(t *testing.T) {
	b := build(t, []Record{{Key: []byte("k"), Data: []byte("v")}})
	h := Hash([]byte("k")) & 255
	le.PutUint32(b[h*8:], 0xfffffff0)
	r, err := reader(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Get([]byte("k")); !isFormatError(err) {
		t.Errorf("err = %v, want a FormatError", err)
	}
	le.PutUint32(b[h*8:], 100) // inside the header
	if _, _, err := r.Get([]byte("k")); !isFormatError(err) {
		t.Errorf("err = %v, want a FormatError", err)
	}
}

func TestRecordOutOfRange(t *testing.T) {
	b := build(t, []Record{{Key: []byte("k"), Data: []byte("v")}})
	le.PutUint32(b[headerSize+4:], 0xffffffff) // data length
	r, err := reader(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Get([]byte("k")); !isFormatError(err) {
		t.Errorf("Get: err = %v, want a FormatError", err)
	}
	if err := exercise(r); !isFormatError(err) {
		t.Errorf("All: err = %v, want a FormatError", err)
	}
}

// TestFullTableEnds: a table whose every slot is taken by other hashes must not loop.
func TestFullTableEnds(t *testing.T) {
	b := build(t, []Record{{Key: []byte("k"), Data: []byte("v")}})
	h := Hash([]byte("k"))
	tpos := le.Uint32(b[(h&255)*8:])
	slots := le.Uint32(b[(h&255)*8+4:])
	for i := range slots {
		le.PutUint32(b[tpos+8*i:], h^0x100) // same table, other hash
		le.PutUint32(b[tpos+8*i+4:], headerSize)
	}
	r, err := reader(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, err := r.Get([]byte("k")); ok || err != nil {
		t.Errorf("Get = %q, %v, %v; want not found", v, ok, err)
	}
}

// TestSlotsIntoHeader: slots pointing back at the header give garbage records, bounded.
func TestSlotsIntoHeader(t *testing.T) {
	b := build(t, []Record{{Key: []byte("k"), Data: []byte("v")}})
	h := Hash([]byte("k"))
	tpos := le.Uint32(b[(h&255)*8:])
	slots := le.Uint32(b[(h&255)*8+4:])
	for i := range slots {
		le.PutUint32(b[tpos+8*i:], h)
		le.PutUint32(b[tpos+8*i+4:], 8)
	}
	r, err := reader(t, b)
	if err != nil {
		t.Fatal(err)
	}
	// The "record" at 8 has lengths taken from the header; whatever they are, the
	// lookup ends with a result or an error.
	_, _, _ = r.Get([]byte("k"))
}

func TestRecordsEndOutOfRange(t *testing.T) {
	b := build(t, nil)
	le.PutUint32(b[0:], 1<<31)
	r, err := reader(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := exercise(r); !isFormatError(err) {
		t.Errorf("err = %v, want a FormatError", err)
	}
}

func TestAddTooBig(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "big.cdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := NewWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	// Pretend 4 GiB of records were written already, without writing them.
	w.pos = maxSize - 20
	if err := w.Add([]byte("key"), []byte("data")); !errors.Is(err, ErrTooBig) {
		t.Errorf("Add past 4 GiB: err = %v, want ErrTooBig", err)
	}
	if err := w.Finish(); !errors.Is(err, ErrTooBig) {
		t.Errorf("Finish after ErrTooBig: err = %v", err)
	}
}

// FuzzReader feeds arbitrary bytes to every read path: errors are fine, panics and
// hangs are not.
func FuzzReader(f *testing.F) {
	f.Add([]byte{}, []byte("k"))
	f.Add(make([]byte, headerSize), []byte(""))
	path := filepath.Join(f.TempDir(), "seed.cdb")
	err := WriteFile(path, func(w *Writer) error {
		for _, r := range []Record{{Key: []byte("k"), Data: []byte("v")}, {Key: []byte("k"), Data: []byte("w")}, {Key: nil, Data: []byte("x")}} {
			if err := w.Add(r.Key, r.Data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(path)
	f.Add(seed, []byte("k"))
	f.Fuzz(func(t *testing.T, file, key []byte) {
		r, err := NewReader(bytes.NewReader(file), int64(len(file)))
		if err != nil {
			return
		}
		r.Get(key)
		for _, err := range r.Values(key) {
			if err != nil {
				break
			}
		}
		n := 0
		for _, err := range r.All() {
			if err != nil {
				break
			}
			n++
		}
	})
}

// FuzzRoundTrip checks that whatever is written reads back.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("key"), []byte("data"), []byte("key"), []byte("more"))
	f.Add([]byte(""), []byte(""), []byte("\x00"), []byte("\xff"))
	f.Fuzz(func(t *testing.T, k1, d1, k2, d2 []byte) {
		path := filepath.Join(t.TempDir(), "rt.cdb")
		rs := []Record{{Key: k1, Data: d1}, {Key: k2, Data: d2}}
		writeRecords(t, path, rs)
		checkRecords(t, path, rs)
	})
}
