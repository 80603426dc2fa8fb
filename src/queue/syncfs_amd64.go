package queue

// sysSyncfs is syncfs(2) and sysRenameat2 renameat2(2) on linux/amd64, which package
// syscall does not name.
const (
	sysSyncfs    = 306
	sysRenameat2 = 316
)
