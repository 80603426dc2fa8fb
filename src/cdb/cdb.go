// Package cdb reads and writes D. J. Bernstein's constant database format, the format of
// qmail's users/cdb and control/morercpthosts.cdb (and of tinycdb's cdb tool).
//
// A cdb file is a 2048-byte header of 256 (position, slot count) pairs, then the records
// (key length, data length, key, data), then 256 open-addressing hash tables of
// (hash, record position) slots. Every number is a little-endian uint32, so a file is
// at most 4 GiB. Keys may repeat; a lookup can return every value of a key in the order
// they were added.
//
// The reader treats a file as hostile: every position is checked against the file's
// size and every probe loop is bounded by the table's slot count, so a damaged file
// gives an error, never a panic or a hang.
package cdb

import (
	"encoding/binary"
	"errors"
	"fmt"
)

const (
	headerSize = 256 * 8
	// maxSize is the largest file the format can address.
	maxSize = 1<<32 - 1
)

// ErrTooBig is returned when a database would not fit in cdb's 4 GiB.
var ErrTooBig = errors.New("cdb: database would exceed 4 GiB")

// FormatError reports a damaged or hostile cdb file.
type FormatError struct {
	Msg string
}

func (e *FormatError) Error() string { return "cdb: bad format: " + e.Msg }

func formatErr(format string, args ...any) error {
	return &FormatError{Msg: fmt.Sprintf(format, args...)}
}

// Hash is cdb's hash function: h = 5381; h = (h*33) ^ c for every byte.
func Hash(key []byte) uint32 {
	h := uint32(5381)
	for _, c := range key {
		h = ((h << 5) + h) ^ uint32(c)
	}
	return h
}

var le = binary.LittleEndian
