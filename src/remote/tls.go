package remote

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
)

// TLSMode is how much TLS a destination demands.
type TLSMode int

const (
	// TLSMay: STARTTLS whenever offered, any certificate; plain text when not offered.
	TLSMay TLSMode = iota
	// TLSNone: never STARTTLS (for servers with broken TLS).
	TLSNone
	// TLSEncrypt: STARTTLS required, any certificate.
	TLSEncrypt
	// TLSVerify: STARTTLS required with a certificate that verifies for the host
	// name, or whose SHA-256 fingerprint is pinned.
	TLSVerify
)

func (m TLSMode) String() string {
	switch m {
	case TLSNone:
		return "none"
	case TLSEncrypt:
		return "encrypt"
	case TLSVerify:
		return "verify"
	}
	return "may"
}

// TLSPolicy is the TLS demanded for one connection.
type TLSPolicy struct {
	Mode TLSMode
	// Pins are SHA-256 digests of acceptable leaf certificates (DER). A match counts
	// as verified whatever the certificate's names and issuer.
	Pins [][sha256.Size]byte
	// Names are the names a certificate may verify for; empty means the host name.
	Names []string
}

// TLSPolicySource decides the policy for a destination. The control file
// (tlsdestinations) is one; DANE (TLSA records) and MTA-STS can be others, combined
// by the caller. domain is the recipient domain, host the server about to be used.
type TLSPolicySource interface {
	TLSPolicy(ctx context.Context, domain string, host string) (TLSPolicy, error)
}

// tlsResult is what a connection's TLS came to, for the report.
type tlsResult struct {
	used     bool
	verified bool
	version  string
	why      string // why unverified, or why no TLS
}

// String is the report line: "TLS verified (TLS1.3, mx.example).", "TLS unverified
// (TLS1.3: x509: ...)." or "No TLS: ...".
func (r tlsResult) String() string {
	switch {
	case r.used && r.verified:
		return fmt.Sprintf("TLS verified (%s%s).", r.version, r.why)
	case r.used:
		return fmt.Sprintf("TLS unverified (%s: %s).", r.version, r.why)
	}
	return "No TLS: " + r.why + "."
}

func tlsVersion(v uint16) string {
	return strings.ReplaceAll(tls.VersionName(v), " ", "")
}

// verifyPeer checks the handshake's certificate against the policy's pins and names.
// It returns whether it verified, and for the report either ", <name>" or the reason.
func verifyPeer(cs tls.ConnectionState, pol TLSPolicy, host string, roots *x509.CertPool) (bool, string) {
	if len(cs.PeerCertificates) == 0 {
		return false, "no certificate"
	}
	leaf := cs.PeerCertificates[0]
	if len(pol.Pins) > 0 {
		sum := sha256.Sum256(leaf.Raw)
		for _, p := range pol.Pins {
			if p == sum {
				return true, ", pinned " + hex.EncodeToString(sum[:8])
			}
		}
		return false, "certificate fingerprint sha256:" + hex.EncodeToString(sum[:]) + " is not pinned"
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
		return false, oneLine(err.Error())
	}
	names := pol.Names
	if len(names) == 0 {
		names = []string{host}
	}
	var err error
	for _, n := range names {
		n = strings.TrimSuffix(n, ".")
		if a, perr := netip.ParseAddr(strings.Trim(n, "[]")); perr == nil {
			n = a.String()
		}
		if err = leaf.VerifyHostname(n); err == nil {
			return true, ", " + n
		}
	}
	return false, oneLine(err.Error())
}

func oneLine(s string) string {
	// Error texts carry what peers sent (a certificate's names, for one): no line
	// break or other control character may reach the report, the log or a bounce.
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\n':
			return ' '
		case r < ' ' || r == 0x7f:
			return '?'
		}
		return r
	}, s)
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// Strictest combines policy sources (the control file, and later DANE and MTA-STS):
// the strictest mode wins, pins and names add up. A source's error is the result's.
type Strictest []TLSPolicySource

// TLSPolicy implements TLSPolicySource.
func (s Strictest) TLSPolicy(ctx context.Context, domain, host string) (TLSPolicy, error) {
	var out TLSPolicy
	for _, src := range s {
		p, err := src.TLSPolicy(ctx, domain, host)
		if err != nil {
			return TLSPolicy{}, err
		}
		if strictness(p.Mode) > strictness(out.Mode) {
			out.Mode = p.Mode
		}
		out.Pins = append(out.Pins, p.Pins...)
		out.Names = append(out.Names, p.Names...)
	}
	return out, nil
}

// strictness orders modes. may is every source's default, so an explicit none (a
// server whose TLS is broken) overrides it, while a source requiring TLS overrides
// none.
func strictness(m TLSMode) int {
	switch m {
	case TLSMay:
		return 0
	case TLSNone:
		return 1
	case TLSEncrypt:
		return 2
	}
	return 3
}
