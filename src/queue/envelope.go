package queue

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Envelope is a todo/ (or intd/) file as qmail-queue writes it:
//
//	u<uid>\0 p<pid>\0 F<sender>\0 T<recipient>\0 ...
//
// Records of other types (a QUEUE_EXTRA seam may add some) are kept in Extra.
type Envelope struct {
	UID, PID   int // -1 when the record is absent
	Sender     string
	Recipients []string
	Extra      []string // unknown records, with their type letter
}

// ParseEnvelope reads a todo/ file's contents. It rejects a file that does not end in
// NUL (a write cut short), that has no F record or a second one, or whose u or p
// record is not a number.
func ParseEnvelope(b []byte) (Envelope, error) {
	env := Envelope{UID: -1, PID: -1}
	if len(b) == 0 {
		return env, fmt.Errorf("empty envelope")
	}
	if b[len(b)-1] != 0 {
		return env, fmt.Errorf("envelope does not end in NUL: truncated")
	}
	haveF := false
	for _, rec := range bytes.Split(b[:len(b)-1], []byte{0}) {
		if len(rec) == 0 {
			return env, fmt.Errorf("empty envelope record")
		}
		v := string(rec[1:])
		switch rec[0] {
		case 'u', 'p':
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return env, fmt.Errorf("bad %c record %q", rec[0], v)
			}
			if rec[0] == 'u' {
				env.UID = n
			} else {
				env.PID = n
			}
		case 'F':
			if haveF {
				return env, fmt.Errorf("second F record")
			}
			haveF = true
			env.Sender = v
		case 'T':
			if !haveF {
				return env, fmt.Errorf("T record before F")
			}
			env.Recipients = append(env.Recipients, v)
		default:
			env.Extra = append(env.Extra, string(rec))
		}
	}
	if !haveF {
		return env, fmt.Errorf("envelope has no F record")
	}
	return env, nil
}

// ReadEnvelope reads and parses todo/<id>.
func (q Queue) ReadEnvelope(id uint64) (Envelope, error) {
	b, err := os.ReadFile(q.Path("todo", id))
	if err != nil {
		return Envelope{}, err
	}
	env, err := ParseEnvelope(b)
	if err != nil {
		return env, fmt.Errorf("%s: %w", q.Path("todo", id), err)
	}
	return env, nil
}

// Todo lists the message ids in todo/, ignoring names that are not ids.
func (q Queue) Todo() ([]uint64, error) {
	ents, err := os.ReadDir(filepath.Join(q.Dir, "todo"))
	if err != nil {
		return nil, err
	}
	var ids []uint64
	for _, e := range ents {
		if id, err := strconv.ParseUint(e.Name(), 10, 64); err == nil && strconv.FormatUint(id, 10) == e.Name() {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
