// Package rcpthosts decides which recipient domains qmail-smtpd accepts, from
// control/rcpthosts and control/morercpthosts.cdb, and compiles control/morercpthosts
// into that cdb (qmail-newmrh).
//
// A domain is accepted when it, or one of its parent domains written with a leading
// dot, is listed (case-insensitively): "example.org" accepts only example.org;
// ".example.org" accepts every subdomain of example.org but not example.org itself.
// control/rcpthosts is searched first, then morercpthosts.cdb, as qmail's rcpthosts.c
// does. morercpthosts.cdb is only consulted when rcpthosts exists.
package rcpthosts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/notqmail/notqmail/src/cdb"
	"github.com/notqmail/notqmail/src/control"
)

// Matcher answers whether a recipient domain is accepted.
type Matcher struct {
	configured bool
	hosts      map[string]bool // lowercased lines of rcpthosts
	more       *cdb.Reader     // morercpthosts.cdb, nil when missing
	morePath   string
}

// Open reads controlDir/rcpthosts and opens controlDir/morercpthosts.cdb if it exists.
// Like qmail-smtpd, it keeps the cdb open: a later qmail-newmrh takes effect for new
// connections.
func Open(controlDir string) (*Matcher, error) {
	d := control.Open(controlDir)
	m := &Matcher{hosts: map[string]bool{}, morePath: d.File("morercpthosts.cdb")}
	if _, err := os.Stat(d.File("rcpthosts")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return m, nil
		}
		return nil, fmt.Errorf("unable to read %s: %w", d.File("rcpthosts"), err)
	}
	lines, err := d.Strings("rcpthosts")
	if err != nil {
		return nil, err
	}
	m.configured = true
	for _, l := range lines {
		m.hosts[lowerASCII(l)] = true
	}
	r, err := cdb.Open(m.morePath)
	switch {
	case err == nil:
		m.more = r
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("unable to read %s: %w", m.morePath, err)
	}
	return m, nil
}

// Close closes morercpthosts.cdb.
func (m *Matcher) Close() error {
	if m.more == nil {
		return nil
	}
	err := m.more.Close()
	m.more = nil
	return err
}

// Configured reports whether control/rcpthosts exists.
//
// Without it qmail-smtpd is an open relay. This project fails closed instead (see the
// rcpthosts entry of control.Files): Accept then refuses every domain and only
// RELAYCLIENT lets recipients through; a caller that wants qmail's open behaviour
// checks Configured itself.
func (m *Matcher) Configured() bool { return m.configured }

// Check reports whether domain is accepted. An error means morercpthosts.cdb could not
// be read; qmail-smtpd answers that with a temporary failure.
func (m *Matcher) Check(domain string) (bool, error) {
	if !m.configured {
		return false, nil
	}
	host := lowerASCII(domain)
	for j := 0; j < len(host); j++ {
		if (j == 0 || host[j] == '.') && m.hosts[host[j:]] {
			return true, nil
		}
	}
	if m.more == nil {
		return false, nil
	}
	for j := 0; j < len(host); j++ {
		if j == 0 || host[j] == '.' {
			_, ok, err := m.more.Get([]byte(host[j:]))
			if err != nil {
				return false, fmt.Errorf("%s: %w", m.morePath, err)
			}
			if ok {
				return true, nil
			}
		}
	}
	return false, nil
}

// Accept reports whether domain is accepted; an unreadable morercpthosts.cdb refuses.
func (m *Matcher) Accept(domain string) bool {
	ok, err := m.Check(domain)
	return ok && err == nil
}

// CheckAddr is Check on the domain of an address (after its last "@"). An address with
// no "@" is accepted when rcpthosts exists, as qmail does: qmail-send will append
// envnoathost, a local name.
func (m *Matcher) CheckAddr(addr string) (bool, error) {
	if !m.configured {
		return false, nil
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return true, nil
	}
	return m.Check(addr[at+1:])
}

// lowerASCII lowercases A-Z only, as qmail's case_lowerb does.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
