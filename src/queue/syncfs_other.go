//go:build !amd64 && !arm64

package queue

// sysSyncfs 0: syncFS falls back to sync(2) on the other architectures; sysRenameat2
// 0: RenameNoReplace checks with lstat.
const (
	sysSyncfs    = 0
	sysRenameat2 = 0
)
