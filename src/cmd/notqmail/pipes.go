package main

import (
	"os"
	"syscall"
)

// pipeFile returns inherited descriptor fd (a pipe between qmail-send and a helper)
// as a non-blocking file served by the Go runtime's poller. A goroutine waiting on it
// then parks, instead of holding a thread in read(2): a thread blocked in a system
// call makes the scheduler hand its processor to another thread each time (every
// message, for these pipes), which cost qmail-send about half of its CPU. If the
// descriptor cannot be made non-blocking, it is used as it is.
//
// Only descriptors that no other process reads or writes are passed here: the
// non-blocking flag belongs to the pipe end, not to this process.
func pipeFile(fd int, name string) *os.File {
	syscall.SetNonblock(fd, true)
	// os.NewFile registers a descriptor that is non-blocking with the poller.
	return os.NewFile(uintptr(fd), name)
}
