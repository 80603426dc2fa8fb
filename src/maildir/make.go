package maildir

import (
	"fmt"
	"os"
	"path/filepath"
)

// Make creates an empty maildir at path, as maildirmake does: the directory and its
// tmp, new and cur subdirectories, each mode 0700 whatever the umask. It fails if path
// already exists, so an existing maildir (or anything else) is never touched.
func Make(path string) error {
	if err := mkdir700(path); err != nil {
		return err
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := mkdir700(filepath.Join(path, sub)); err != nil {
			return err
		}
	}
	return nil
}

// mkdir700 creates dir with mode 0700; the chmod undoes a umask that removes owner bits.
func mkdir700(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("unable to mkdir %s: %w", dir, unwrapPath(err))
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("unable to chmod %s: %w", dir, unwrapPath(err))
	}
	return nil
}

// unwrapPath drops the *PathError wrapper, whose text would repeat the path.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
