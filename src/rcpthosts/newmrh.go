package rcpthosts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/notqmail/notqmail/src/cdb"
	"github.com/notqmail/notqmail/src/control"
)

// NewMRH compiles controlDir/morercpthosts into controlDir/morercpthosts.cdb as
// qmail-newmrh does: every line lowercased with trailing white space removed, blank
// lines and '#' comments skipped, each stored as a key with empty data. It writes
// morercpthosts.tmp, syncs it and renames it over morercpthosts.cdb, so qmail-smtpd
// never sees a partial file. A missing morercpthosts is an error, as in qmail.
func NewMRH(controlDir string) error {
	d := control.Open(controlDir)
	src := d.File("morercpthosts")
	// control treats a missing file as empty; qmail-newmrh refuses to run without one.
	if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unable to read %s: %w", src, err)
	}
	lines, err := d.Strings("morercpthosts")
	if err != nil {
		return err
	}
	dst := d.File("morercpthosts.cdb")
	return cdb.WriteFileVia(dst, filepath.Join(controlDir, "morercpthosts.tmp"), func(w *cdb.Writer) error {
		for _, l := range lines {
			if err := w.Add([]byte(lowerASCII(l)), nil); err != nil {
				return err
			}
		}
		return nil
	})
}
