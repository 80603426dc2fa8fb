package listener

import (
	"bytes"
	"net"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
)

// fakeConn is one end of a pipe that says it comes from a given address.
type fakeConn struct {
	net.Conn
	remote netip.AddrPort
}

func (c fakeConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.remote) }
func (c fakeConn) LocalAddr() net.Addr {
	return net.TCPAddrFromAddrPort(netip.MustParseAddrPort("[2001:db8::25]:25"))
}

// listFromAddrs hands out one connection per address, then lets the handlers go
// and reports itself closed: every connection is decided on while the earlier ones
// still hold their slots.
type listFromAddrs struct {
	addrs   []string
	release chan struct{}
}

func (l *listFromAddrs) Accept() (net.Conn, error) {
	if len(l.addrs) == 0 {
		close(l.release)
		return nil, net.ErrClosed
	}
	a := l.addrs[0]
	l.addrs = l.addrs[1:]
	server, _ := net.Pipe()
	return fakeConn{server, netip.AddrPortFrom(netip.MustParseAddr(a), 4000)}, nil
}
func (l *listFromAddrs) Close() error   { return nil }
func (l *listFromAddrs) Addr() net.Addr { return &net.TCPAddr{} }

// TestPerIPLimitCountsIPv6Networks: an IPv6 client usually holds a whole /64, so
// the per-address limit counts IPv6 clients per /64, as the AUTH failure limit
// does; counted per address, one host could take every connection slot.
func TestPerIPLimitCountsIPv6Networks(t *testing.T) {
	release := make(chan struct{})
	ln := &listFromAddrs{addrs: []string{"2001:db8::1", "2001:db8::2", "2001:db8::ffff:1", "2001:db8:0:1::1", "192.0.2.1", "192.0.2.2"}, release: release}
	var mu sync.Mutex
	var served []string
	var log bytes.Buffer
	cfg := Config{
		MaxConns: 10, MaxPerIP: 1, Log: &log,
		Handle: func(c net.Conn, env []EnvVar, _ string) {
			for _, e := range env {
				if e.Name == "TCPREMOTEIP" {
					mu.Lock()
					served = append(served, e.Value)
					mu.Unlock()
				}
			}
			<-release
		},
	}
	if err := Serve(ln, cfg); err != nil {
		t.Fatal(err)
	}
	sort.Strings(served)
	if want := []string{"192.0.2.1", "192.0.2.2", "2001:db8:0:1::1", "2001:db8::1"}; !reflect.DeepEqual(served, want) {
		t.Errorf("served %v, want %v", served, want)
	}
	for _, a := range []string{"2001:db8::2", "2001:db8::ffff:1"} {
		if !strings.Contains(log.String(), "refused "+a+":") {
			t.Errorf("%s not refused; log:\n%s", a, log.String())
		}
	}
}
