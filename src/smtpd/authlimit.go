package smtpd

import (
	"net/netip"
	"sync"
	"time"
)

// Defaults of the AUTH failure limits.
const (
	DefaultAuthFailMax    = 5                // failed AUTHs from one address in a window
	DefaultAuthFailWindow = 15 * time.Minute // the window, counted from its first failure
	authFailsPerSession   = 3                // failures after which a session is closed
	maxAuthFailAddrs      = 10000            // addresses remembered at once
)

// AuthLimiter counts failed AUTH attempts per client address across the sessions
// of one process (the built-in listener): once an address has failed Max times
// within Window, its AUTH commands are refused without asking checkpassword until
// the window ends. IPv6 clients are counted per /64, since one host usually holds
// a whole /64. Memory is bounded: at most maxAuthFailAddrs addresses are kept,
// expired ones dropped first.
type AuthLimiter struct {
	Max    int
	Window time.Duration
	Now    func() time.Time // default time.Now

	mu    sync.Mutex
	fails map[netip.Addr]*authFails
}

type authFails struct {
	n     int
	first time.Time
}

// NewAuthLimiter returns a limiter with the default limits.
func NewAuthLimiter() *AuthLimiter {
	return &AuthLimiter{Max: DefaultAuthFailMax, Window: DefaultAuthFailWindow}
}

func (l *AuthLimiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// key is the address the failures are counted for; ok is false for an address that
// does not parse (then nothing is counted across sessions).
func authKey(ip string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Addr{}, false
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr(), true
	}
	return a, true
}

// Blocked reports whether ip has used up its failures.
func (l *AuthLimiter) Blocked(ip string) bool {
	k, ok := authKey(ip)
	if !ok {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fails[k]
	if f == nil {
		return false
	}
	if l.now().Sub(f.first) >= l.Window {
		delete(l.fails, k)
		return false
	}
	return f.n >= l.Max
}

// Fail records a failed attempt from ip and returns the count in the window.
func (l *AuthLimiter) Fail(ip string) int {
	k, ok := authKey(ip)
	if !ok {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.fails == nil {
		l.fails = map[netip.Addr]*authFails{}
	}
	f := l.fails[k]
	if f != nil && now.Sub(f.first) >= l.Window {
		f = nil
	}
	if f == nil {
		if len(l.fails) >= maxAuthFailAddrs {
			l.prune(now)
		}
		f = &authFails{first: now}
		l.fails[k] = f
	}
	f.n++
	return f.n
}

// prune drops expired entries, and if that frees nothing, an arbitrary tenth of
// the table: a client spraying addresses must not grow memory.
func (l *AuthLimiter) prune(now time.Time) {
	for k, f := range l.fails {
		if now.Sub(f.first) >= l.Window {
			delete(l.fails, k)
		}
	}
	for k := range l.fails {
		if len(l.fails) < maxAuthFailAddrs*9/10 {
			break
		}
		delete(l.fails, k)
	}
}
