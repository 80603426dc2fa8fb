package listener

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// sleep waits between failed accepts; tests replace it.
var sleep = time.Sleep

// Defaults for Config.
const (
	DefaultMaxConns = 40 // tcpserver's -c default
	// DefaultMaxPerIP is half the connection limit, as Postfix does, and no less than
	// qmail-send's default concurrencyremote: a notqmail sending to a notqmail with
	// both at their defaults must not have deliveries refused (and deferred).
	DefaultMaxPerIP = 20
)

// Config is a listener's policy.
type Config struct {
	MaxConns  int    // connections served at once; more wait in the kernel's backlog
	MaxPerIP  int    // connections from one address (IPv6: one /64) at once; more are refused
	Rules     Rules  // access rules; nil allows everyone
	LocalHost string // TCPLOCALHOST for every connection ("" leaves it unset)
	// Handle serves one connection; env is what tcpserver would have set for it,
	// rule variables last. The listener closes the connection after Handle returns.
	Handle func(c net.Conn, env []EnvVar, id string)
	// Refuse answers a connection over the per-address limit before it is closed;
	// nil just closes it.
	Refuse func(c net.Conn)
	Log    io.Writer // one line per refused or denied connection
}

// Listen listens on the TCP address addr, with keep-alive for the connections it
// accepts, as net.Listen does; on Linux it is set once, on the listening socket.
func Listen(addr string) (net.Listener, error) {
	lc := listenConfig()
	return lc.Listen(context.Background(), "tcp", addr)
}

// Serve accepts connections on ln until it fails or is closed, serving each in its
// own goroutine under cfg's limits, and waits for running sessions before it returns.
func Serve(ln net.Listener, cfg Config) error {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxPerIP <= 0 {
		cfg.MaxPerIP = DefaultMaxPerIP
	}
	slots := make(chan struct{}, cfg.MaxConns)
	var mu sync.Mutex
	perIP := map[netip.Addr]int{}
	var wg sync.WaitGroup
	defer wg.Wait()
	var n uint64
	pid := strconv.Itoa(os.Getpid()) // for the session ids; a system call each time
	var backoff time.Duration
	for {
		slots <- struct{}{}
		c, err := ln.Accept()
		if err != nil {
			<-slots
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, syscall.ECONNABORTED) {
				cfg.logf("accept: %v", err)
				continue
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// The connection stays in the backlog and Accept fails again at
				// once: wait, longer each time, rather than spin and fill the log.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				cfg.logf("accept: %v; waiting %v", err, backoff)
				sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		n++
		id := pid + "." + strconv.FormatUint(n, 10)
		remote := addrPort(c.RemoteAddr())
		ip := remote.Addr().Unmap()
		key := limitKey(ip)
		mu.Lock()
		over := perIP[key] >= cfg.MaxPerIP
		if !over {
			perIP[key]++
		}
		mu.Unlock()
		if over {
			from := "it"
			if key != ip {
				from = "its /64"
			}
			cfg.logf("%s refused %s: more than %d connections from %s", id, ip, cfg.MaxPerIP, from)
			go func() {
				if cfg.Refuse != nil {
					cfg.Refuse(c)
				}
				c.Close()
				<-slots
			}()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			defer func() {
				mu.Lock()
				if perIP[key]--; perIP[key] <= 0 {
					delete(perIP, key)
				}
				mu.Unlock()
			}()
			defer c.Close()
			cfg.serve(c, id, ip, remote.Port())
		}()
	}
}

func (cfg *Config) serve(c net.Conn, id string, ip netip.Addr, port uint16) {
	local := addrPort(c.LocalAddr())
	env := []EnvVar{
		{"PROTO", "TCP"},
		{"TCPLOCALIP", local.Addr().Unmap().String()},
		{"TCPLOCALPORT", strconv.Itoa(int(local.Port()))},
		{"TCPREMOTEIP", ip.String()},
		{"TCPREMOTEPORT", strconv.Itoa(int(port))},
	}
	if cfg.LocalHost != "" {
		env = append(env, EnvVar{"TCPLOCALHOST", cfg.LocalHost})
	}
	if cfg.Rules != nil {
		rule, err := Match(cfg.Rules, ip.String(), "", "")
		if err != nil {
			cfg.logf("%s dropped %s: rules unreadable: %v", id, ip, err)
			return
		}
		if rule.Deny {
			cfg.logf("%s denied %s by rule", id, ip)
			return
		}
		env = append(env, rule.Env...)
	}
	cfg.Handle(c, env, id)
}

// limitKey is what the per-address limit counts: an IPv4 address, or the /64 of an
// IPv6 one, since one IPv6 host usually holds a whole /64 and could otherwise take
// every connection slot by itself.
func limitKey(ip netip.Addr) netip.Addr {
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func (cfg *Config) logf(format string, args ...any) {
	if cfg.Log != nil {
		fmt.Fprintf(cfg.Log, "listener: "+format+"\n", args...)
	}
}

// ForThisProcess reports whether sockets were passed to this process by socket
// activation (LISTEN_PID names it): whether Activated will have listeners to return.
// LISTEN_FDS alone may be left over in the environment of some other process.
func ForThisProcess() bool { return os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()) }

// Activated returns the sockets passed by systemd-style socket activation
// (LISTEN_PID naming this process, LISTEN_FDS counting descriptors from 3), or nil.
func Activated() ([]net.Listener, error) {
	if !ForThisProcess() {
		return nil, nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil, fmt.Errorf("LISTEN_FDS=%q is not a positive number", os.Getenv("LISTEN_FDS"))
	}
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	var lns []net.Listener
	for fd := 3; fd < 3+n; fd++ {
		syscall.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "listen-fd-"+strconv.Itoa(fd))
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("socket activation fd %d: %w", fd, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// DropPrivileges makes a root process uid:gid with gid as its only group, as
// tcpserver's -u and -g do. It does nothing when the process is not root.
func DropPrivileges(uid, gid int) error {
	if os.Geteuid() != 0 {
		return nil
	}
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid %d: %w", uid, err)
	}
	return nil
}
