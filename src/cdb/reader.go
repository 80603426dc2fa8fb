package cdb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
)

// Reader looks records up in a cdb file. It reads with ReadAt, so it is safe for
// concurrent use and never maps the file.
type Reader struct {
	r      io.ReaderAt
	size   uint64
	header [headerSize]byte
	file   *os.File
}

// Record is one key and its data.
type Record struct {
	Key, Data []byte
}

// Open opens the cdb file at path.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	r, err := NewReader(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.file = f
	return r, nil
}

// NewReader reads a cdb of the given size from r.
func NewReader(r io.ReaderAt, size int64) (*Reader, error) {
	if size < headerSize {
		return nil, formatErr("file of %d bytes is shorter than the %d-byte header", size, headerSize)
	}
	// Bytes past 4 GiB cannot be addressed; they are ignored rather than rejected.
	if size > maxSize {
		size = maxSize
	}
	cr := &Reader{r: r, size: uint64(size)}
	if err := cr.readAt(cr.header[:], 0); err != nil {
		return nil, err
	}
	return cr, nil
}

// Close closes a Reader from Open.
func (r *Reader) Close() error {
	if r.file == nil {
		return nil
	}
	err := r.file.Close()
	r.file = nil
	return err
}

// readAt fills b from offset off, which must lie within the file.
func (r *Reader) readAt(b []byte, off uint64) error {
	if off > r.size || uint64(len(b)) > r.size-off {
		return formatErr("%d bytes at offset %d run past the end of the file (%d bytes)", len(b), off, r.size)
	}
	n, err := r.r.ReadAt(b, int64(off))
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return formatErr("file truncated at offset %d", off+uint64(n))
	}
	return fmt.Errorf("cdb: %w", err)
}

// recordHeader returns the key and data lengths of the record at pos, checking the
// whole record lies inside the file.
func (r *Reader) recordHeader(pos uint64) (klen, dlen uint32, err error) {
	var h [8]byte
	if err := r.readAt(h[:], pos); err != nil {
		return 0, 0, err
	}
	klen, dlen = le.Uint32(h[0:]), le.Uint32(h[4:])
	if pos+8+uint64(klen)+uint64(dlen) > r.size {
		return 0, 0, formatErr("record at %d (key %d, data %d bytes) runs past the end of the file", pos, klen, dlen)
	}
	return klen, dlen, nil
}

// Get returns the first value of key.
func (r *Reader) Get(key []byte) ([]byte, bool, error) {
	for v, err := range r.Values(key) {
		if err != nil {
			return nil, false, err
		}
		return v, true, nil
	}
	return nil, false, nil
}

// Values yields every value of key in the order they were added. On a damaged file it
// yields a nil value with the error, then stops.
func (r *Reader) Values(key []byte) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		h := Hash(key)
		entry := r.header[(h&255)*8:]
		tpos, slots := uint64(le.Uint32(entry)), uint64(le.Uint32(entry[4:]))
		if slots == 0 {
			return
		}
		if tpos < headerSize || tpos+8*slots > r.size {
			yield(nil, formatErr("hash table %d (%d slots at %d) lies outside the file", h&255, slots, tpos))
			return
		}
		start := uint64(h>>8) % slots
		var s [8]byte
		kbuf := make([]byte, len(key))
		// Each slot is visited at most once, so even a table with no empty slot ends.
		for i := uint64(0); i < slots; i++ {
			where := (start + i) % slots
			if err := r.readAt(s[:], tpos+8*where); err != nil {
				yield(nil, err)
				return
			}
			sh, pos := le.Uint32(s[0:]), uint64(le.Uint32(s[4:]))
			if pos == 0 {
				return
			}
			if sh != h {
				continue
			}
			klen, dlen, err := r.recordHeader(pos)
			if err != nil {
				yield(nil, err)
				return
			}
			if int(klen) != len(key) {
				continue
			}
			if err := r.readAt(kbuf, pos+8); err != nil {
				yield(nil, err)
				return
			}
			if !bytes.Equal(kbuf, key) {
				continue
			}
			data := make([]byte, dlen)
			if err := r.readAt(data, pos+8+uint64(klen)); err != nil {
				yield(nil, err)
				return
			}
			if !yield(data, nil) {
				return
			}
		}
	}
}

// All yields every record in file order (the order added). On a damaged file it yields
// an empty Record with the error, then stops.
func (r *Reader) All() iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		// The records end where the first hash table begins, as in djb's cdbdump.
		end := uint64(le.Uint32(r.header[:]))
		if end < headerSize || end > r.size {
			yield(Record{}, formatErr("end of records %d lies outside the file", end))
			return
		}
		pos := uint64(headerSize)
		for pos < end {
			klen, dlen, err := r.recordHeader(pos)
			if err != nil {
				yield(Record{}, err)
				return
			}
			next := pos + 8 + uint64(klen) + uint64(dlen)
			if next > end {
				yield(Record{}, formatErr("record at %d runs into the hash tables at %d", pos, end))
				return
			}
			b := make([]byte, uint64(klen)+uint64(dlen))
			if err := r.readAt(b, pos+8); err != nil {
				yield(Record{}, err)
				return
			}
			if !yield(Record{Key: b[:klen:klen], Data: b[klen:]}, nil) {
				return
			}
			pos = next
		}
	}
}
