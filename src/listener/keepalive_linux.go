package listener

import (
	"net"
	"syscall"
	"time"
)

// listenConfig sets on the listening socket the TCP keep-alive that Go's accept
// would otherwise set on every connection, at four setsockopt calls each: Linux
// gives an accepted socket the listening socket's options. The values are Go's
// defaults (net.ListenConfig.KeepAlive): a dead peer holds its slot for about
// 2.5 minutes, not until timeoutsmtpd.
func listenConfig() net.ListenConfig {
	const idle, count = 15 * time.Second, 9
	return net.ListenConfig{
		KeepAlive: -1, // accepted connections keep what they inherit
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				s := int(fd)
				secs := int(idle / time.Second)
				for _, o := range []struct{ level, opt, val int }{
					{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
					{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, secs},
					{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, secs},
					{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, count},
				} {
					if serr = syscall.SetsockoptInt(s, o.level, o.opt, o.val); serr != nil {
						return
					}
				}
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
}
