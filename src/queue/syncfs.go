package queue

import (
	"os"
	"syscall"
)

// syncFS makes every change to the file system holding dir durable (syncfs(2); sync(2)
// where its number is not known here): the one way for qmail-clean, as qmailq, to know
// that qmail-send's removals in its own directories are on disk.
func syncFS(dir string) error {
	if sysSyncfs == 0 {
		syscall.Sync()
		return nil
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, _, e := syscall.Syscall(sysSyncfs, f.Fd(), 0, 0); e != 0 {
		return e
	}
	return nil
}
