package listener

import (
	"net"
	"syscall"
	"testing"
)

// Connections accepted from Listen have keep-alive on with Go's default timing, and
// TCP_NODELAY, as net.Listen gives them, though Listen sets keep-alive only once, on
// the listening socket.
func TestListenKeepAliveInherited(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan map[string]int, 1)
	go Serve(ln, Config{Handle: func(c net.Conn, _ []EnvVar, _ string) {
		opts := map[string]int{}
		rc, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Error(err)
		} else {
			rc.Control(func(fd uintptr) {
				for name, o := range map[string][2]int{
					"SO_KEEPALIVE":  {syscall.SOL_SOCKET, syscall.SO_KEEPALIVE},
					"TCP_KEEPIDLE":  {syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE},
					"TCP_KEEPINTVL": {syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL},
					"TCP_KEEPCNT":   {syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT},
					"TCP_NODELAY":   {syscall.IPPROTO_TCP, syscall.TCP_NODELAY},
				} {
					v, err := syscall.GetsockoptInt(int(fd), o[0], o[1])
					if err != nil {
						t.Errorf("%s: %v", name, err)
					}
					opts[name] = v
				}
			})
		}
		got <- opts
	}})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opts := <-got
	want := map[string]int{"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": 15, "TCP_KEEPINTVL": 15, "TCP_KEEPCNT": 9, "TCP_NODELAY": 1}
	for k, v := range want {
		if opts[k] != v {
			t.Errorf("%s = %d, want %d", k, opts[k], v)
		}
	}
}
