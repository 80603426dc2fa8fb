package maildir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestMake(t *testing.T) {
	old := syscall.Umask(0o277) // removes owner write: Make must still give 0700
	defer syscall.Umask(old)
	md := filepath.Join(t.TempDir(), "Maildir")
	if err := Make(md); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{md, filepath.Join(md, "tmp"), filepath.Join(md, "new"), filepath.Join(md, "cur")} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want a 0700 directory", d, fi.Mode())
		}
	}
	ents, _ := os.ReadDir(md)
	if len(ents) != 3 {
		t.Errorf("maildir holds %d entries, want tmp, new, cur", len(ents))
	}
}

func TestMakeExisting(t *testing.T) {
	md := filepath.Join(t.TempDir(), "Maildir")
	if err := Make(md); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(md, "new", "msg")
	os.WriteFile(keep, []byte("mail"), 0o600)
	err := Make(md)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("Make over an existing maildir: %v, want exists", err)
	}
	if _, serr := os.Stat(keep); serr != nil {
		t.Errorf("existing mail touched: %v", serr)
	}
	if err := Make(filepath.Join(t.TempDir(), "no", "such", "parent")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Make without a parent: %v", err)
	}
}
