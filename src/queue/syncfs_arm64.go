package queue

import "syscall"

const (
	sysSyncfs    = syscall.SYS_SYNCFS
	sysRenameat2 = syscall.SYS_RENAMEAT2
)
