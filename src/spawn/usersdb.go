package spawn

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"

	"github.com/notqmail/notqmail/src/cdb"
	"github.com/notqmail/notqmail/src/fileid"
	"github.com/notqmail/notqmail/src/users"
)

// maxHeldCDB bounds the users/cdb a usersCDB holds in memory; a bigger one is
// opened for every lookup, as qmail-lspawn does.
const maxHeldCDB = 8 << 20

// usersCDB is users/cdb as last read. qmail-lspawn opens it for every delivery (an
// open, an fstat, about eight preads and a close); here one stat of the path tells
// whether the file is still the one read before (qmail-newu renames a new file into
// place, and a file rewritten in place gets a new size or times), so an unchanged
// file costs one stat and is looked up in memory.
type usersCDB struct {
	mu sync.Mutex
	id fileid.ID
	r  *cdb.Reader // nil: nothing held
}

// lookup is users.Lookup on the file at path.
func (u *usersCDB) lookup(path, local string) (users.Assignment, bool, error) {
	r, err := u.reader(path)
	if errors.Is(err, errNoUsersCDB) {
		return users.Assignment{}, false, nil // as users.Lookup, without opening it again
	}
	if err != nil {
		return users.Assignment{}, false, &users.Error{File: path, Msg: err.Error()}
	}
	if r == nil {
		// Too big to hold: read from the file, as qmail-lspawn does.
		return users.Lookup(path, local)
	}
	return users.LookupIn(r, path, local)
}

// errNoUsersCDB is reader's answer when there is no users/cdb at all.
var errNoUsersCDB = errors.New("no users/cdb")

// reader returns the held cdb if it is still the file at path, else reads the file
// anew; nil without an error means the caller should open the file itself (it is
// too big to hold), and errNoUsersCDB that there is none.
func (u *usersCDB) reader(path string) (*cdb.Reader, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		u.r = nil
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errNoUsersCDB
		}
		return nil, err
	}
	if u.r != nil && fileid.Of(&st) == u.id {
		return u.r, nil
	}
	u.r = nil
	if st.Size > maxHeldCDB {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errNoUsersCDB
		}
		return nil, err
	}
	defer f.Close()
	// The id is the opened file's, so a file replaced after the stat above is
	// noticed at the next lookup.
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	if st.Size > maxHeldCDB {
		return nil, nil
	}
	b := make([]byte, st.Size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, err
	}
	r, err := cdb.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	u.r, u.id = r, fileid.Of(&st)
	return r, nil
}
