//go:build !linux

package listener

import "net"

// listenConfig leaves keep-alive to Go's accept, which sets it on every connection.
func listenConfig() net.ListenConfig { return net.ListenConfig{} }
