package cdb

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// slot is one hash table entry: a key's hash and its record's position.
type slot struct {
	hash uint32
	pos  uint32
}

// Writer builds a cdb file. Records go out as they are added; only 8 bytes per record
// stay in memory until Finish writes the hash tables and the header.
type Writer struct {
	w       io.WriteSeeker
	buf     *bufio.Writer
	pos     uint64 // offset of the next record
	entries []slot // in the order added, which Finish keeps within each table
	err     error  // first error; every later call returns it
	file    *os.File
	done    bool
}

// NewWriter starts a cdb at the current start of w (offset 0): it writes a placeholder
// header and then records. Finish must be called to complete the file.
func NewWriter(w io.WriteSeeker) (*Writer, error) {
	if _, err := w.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("cdb: %w", err)
	}
	cw := &Writer{w: w, buf: bufio.NewWriterSize(w, 64<<10), pos: headerSize}
	if _, err := cw.buf.Write(make([]byte, headerSize)); err != nil {
		return nil, fmt.Errorf("cdb: %w", err)
	}
	return cw, nil
}

// Create creates (or truncates) the file at path and returns a Writer on it; Close
// finishes the database and closes the file.
func Create(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	w, err := NewWriter(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	w.file = f
	return w, nil
}

// Add appends a record. Keys may repeat; lookups return the values in the order added.
func (w *Writer) Add(key, data []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return errors.New("cdb: Add after Finish")
	}
	// The record, and later its hash table slot (8 bytes per record, twice over), must
	// stay addressable by a uint32.
	size := 8 + uint64(len(key)) + uint64(len(data))
	if w.pos+size+16*uint64(len(w.entries)+1) > maxSize {
		w.err = ErrTooBig
		return w.err
	}
	var hdr [8]byte
	le.PutUint32(hdr[0:], uint32(len(key)))
	le.PutUint32(hdr[4:], uint32(len(data)))
	if err := w.write(hdr[:], key, data); err != nil {
		return err
	}
	w.entries = append(w.entries, slot{hash: Hash(key), pos: uint32(w.pos)})
	w.pos += size
	return nil
}

func (w *Writer) write(bs ...[]byte) error {
	for _, b := range bs {
		if _, err := w.buf.Write(b); err != nil {
			w.err = fmt.Errorf("cdb: %w", err)
			return w.err
		}
	}
	return nil
}

// Finish writes the hash tables and the header. The underlying writer stays open.
func (w *Writer) Finish() error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return nil
	}
	w.done = true

	// Group the slots by table (the hash's low byte), keeping the order added.
	var count [256]int
	for _, e := range w.entries {
		count[e.hash&255]++
	}
	var start [256]int
	n := 0
	for i := range 256 {
		start[i] = n
		n += count[i]
	}
	split := make([]slot, len(w.entries))
	next := start
	for _, e := range w.entries {
		split[next[e.hash&255]] = e
		next[e.hash&255]++
	}
	w.entries = nil

	var header [headerSize]byte
	for i := range 256 {
		slots := uint32(2 * count[i])
		le.PutUint32(header[i*8:], uint32(w.pos))
		le.PutUint32(header[i*8+4:], slots)
		if slots == 0 {
			continue
		}
		table := make([]slot, slots)
		for _, e := range split[start[i] : start[i]+count[i]] {
			where := (e.hash >> 8) % slots
			for table[where].pos != 0 {
				where++
				if where == slots {
					where = 0
				}
			}
			table[where] = e
		}
		b := make([]byte, 8*slots)
		for j, s := range table {
			le.PutUint32(b[j*8:], s.hash)
			le.PutUint32(b[j*8+4:], s.pos)
		}
		if err := w.write(b); err != nil {
			return err
		}
		w.pos += uint64(len(b))
	}
	if w.pos > maxSize {
		w.err = ErrTooBig
		return w.err
	}
	if err := w.buf.Flush(); err != nil {
		w.err = fmt.Errorf("cdb: %w", err)
		return w.err
	}
	if _, err := w.w.Seek(0, io.SeekStart); err != nil {
		w.err = fmt.Errorf("cdb: %w", err)
		return w.err
	}
	if _, err := w.w.Write(header[:]); err != nil {
		w.err = fmt.Errorf("cdb: %w", err)
		return w.err
	}
	return nil
}

// Close finishes the database and, for a Writer from Create, closes the file.
func (w *Writer) Close() error {
	err := w.Finish()
	if w.file != nil {
		if cerr := w.file.Close(); err == nil {
			err = cerr
		}
		w.file = nil
	}
	return err
}

// WriteFile builds the cdb at path atomically: fn adds the records to path+".tmp",
// which is then finished, synced to disk and renamed over path. On any error the
// temporary file is removed and path is left as it was.
func WriteFile(path string, fn func(*Writer) error) error {
	return WriteFileVia(path, path+".tmp", fn)
}

// WriteFileVia is WriteFile with an explicit temporary file name, for programs whose
// temporary name is part of their interface (qmail-newmrh uses morercpthosts.tmp). tmp
// must be in the same directory as path.
func WriteFileVia(path, tmp string, fn func(*Writer) error) (err error) {
	if filepath.Dir(tmp) != filepath.Dir(path) {
		return fmt.Errorf("cdb: temporary file %s is not beside %s", tmp, path)
	}
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("unable to open %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w, err := NewWriter(f)
	if err != nil {
		return fmt.Errorf("unable to write %s: %w", tmp, err)
	}
	if err := fn(w); err != nil {
		return err
	}
	if err := w.Finish(); err != nil {
		return fmt.Errorf("unable to write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("unable to write %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("unable to write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("unable to move %s to %s: %w", tmp, path, err)
	}
	// Make the rename itself durable; a failure here leaves a complete file in place.
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
