//go:build !amd64 && !arm64

package queue

// sysSyncfs 0: syncFS falls back to sync(2) on the other architectures.
const sysSyncfs = 0
