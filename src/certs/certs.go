// Package certs serves TLS server certificates from the control directory, for
// qmail-smtpd's STARTTLS and implicit TLS and for any other server that speaks TLS
// (qmail-pop3d's STLS).
//
// The files, each holding a PEM certificate chain (leaf first) and its private key:
//
//	control/servercert.pem        the default certificate (qmail-tls's name)
//	control/tls/<domain>.pem      the certificate for clients that ask for <domain>
//	                              by SNI; <domain> is lowercase ASCII (A-label)
//	control/tls/*.<domain>.pem    the same for any one label below <domain>
//
// A client that sends no SNI name, or a name with no file, gets servercert.pem.
//
// Use:
//
//	st, err := certs.Open(control.Default()) // at start-up: a clear error names a
//	                                         // missing, unreadable or mismatched file
//	conn := tls.Server(raw, st.Config())     // per connection
//
// A program serving one connection per process (under tcpserver) uses OpenDefault,
// which checks only servercert.pem and loads an SNI file when a client asks for it.
//
// Every handshake looks at the files' inode, size and modification time (one stat
// each) and reloads a file that changed, so a renewed certificate takes effect for
// new handshakes without a restart while sessions under way keep theirs. A file
// that fails to load after a change (say, caught half-written) is logged and the
// last good certificate stays in use.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/fileid"
)

// Names of the control files, relative to the control directory.
const (
	DefaultFile = "servercert.pem"
	SNIDir      = "tls"
)

// maxFileSize bounds what is read from one certificate file: a chain of a few
// certificates and a key is a few kilobytes.
const maxFileSize = 1 << 20

// ErrNoCertificate is returned by Open when control/servercert.pem does not exist:
// the caller then runs without TLS (qmail-smtpd does not offer STARTTLS) or refuses
// to start (implicit TLS).
var ErrNoCertificate = errors.New("no TLS certificate")

// Store holds the certificates of one control directory.
type Store struct {
	dir string
	// Log receives one line when a changed file cannot be loaded or a handshake
	// asks for an unusable file; nil discards. Set it before serving.
	Log io.Writer

	mu    sync.Mutex
	cache map[string]*entry // by path; only files that existed are kept
}

type entry struct {
	id   fileid.ID
	cert *tls.Certificate
}

// Open loads control/servercert.pem and every control/tls/*.pem, returning an
// error that names the first file that is unreadable, not PEM, lacks a certificate
// or key, or whose key does not match its certificate. A missing servercert.pem is
// ErrNoCertificate (wrapped with the path).
func Open(ctl control.Dir) (*Store, error) {
	s, err := OpenDefault(ctl)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(s.path(SNIDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %v", s.path(SNIDir), errText(err))
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".pem") && !e.IsDir() {
			if _, err := s.get(filepath.Join(s.path(SNIDir), e.Name())); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// OpenDefault is Open checking only servercert.pem; the SNI files are loaded when a
// client asks for their name. It suits a process that serves one session (under
// tcpserver), where loading every domain's key for each connection would be waste.
func OpenDefault(ctl control.Dir) (*Store, error) {
	s := &Store{dir: ctl.Path, cache: map[string]*entry{}}
	def := s.path(DefaultFile)
	if _, err := os.Stat(def); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", def, ErrNoCertificate)
	}
	if _, err := s.get(def); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) path(name string) string { return filepath.Join(s.dir, name) }

// Config returns a server tls.Config choosing the certificate by SNI: TLS 1.2 at
// least and, for TLS 1.2, only forward-secret AEAD cipher suites (TLS 1.3's are all
// of that kind). Each call returns a new Config the caller may change.
func (s *Store) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		GetCertificate: s.GetCertificate,
	}
}

// GetCertificate is tls.Config.GetCertificate: the certificate for the client's
// SNI name (exact file, then the wildcard file one label up), else the default.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	for _, name := range candidates(hello.ServerName) {
		p := filepath.Join(s.path(SNIDir), name+".pem")
		c, err := s.get(p)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			s.logf("certs: %v; trying the next certificate", err)
		}
	}
	return s.get(s.path(DefaultFile))
}

// candidates are the file names (without .pem) to try for an SNI name, or none
// when the name cannot be a host name: it comes from the client, so it never
// reaches the file system unchecked.
func candidates(sni string) []string {
	n := strings.ToLower(strings.TrimSuffix(sni, "."))
	if n == "" || len(n) > 253 || !validHost(n) {
		return nil
	}
	out := []string{n}
	if _, parent, ok := strings.Cut(n, "."); ok && strings.Contains(parent, ".") {
		out = append(out, "*."+parent)
	}
	return out
}

func validHost(n string) bool {
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// get returns the certificate in the file at p, loading it when it is new or
// changed. A missing file is fs.ErrNotExist. When a changed file fails to load,
// the previous certificate is returned and the failure logged.
func (s *Store) get(p string) (*tls.Certificate, error) {
	id, err := stat(p)
	if err != nil {
		s.mu.Lock()
		e := s.cache[p]
		if p == s.path(DefaultFile) && e != nil {
			// The default certificate stays while its file is away (being
			// replaced by a tool that deletes first): TLS must not stop.
			s.mu.Unlock()
			s.logf("certs: %s: %v; keeping the certificate loaded before", p, errText(err))
			return e.cert, nil
		}
		delete(s.cache, p)
		s.mu.Unlock()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("%s: %v", p, errText(err))
	}
	s.mu.Lock()
	e := s.cache[p]
	s.mu.Unlock()
	if e != nil && e.id == id {
		return e.cert, nil
	}
	c, err := load(p)
	if err != nil {
		if e != nil {
			s.logf("certs: %v; keeping the certificate loaded before", err)
			return e.cert, nil
		}
		return nil, err
	}
	s.mu.Lock()
	s.cache[p] = &entry{id: id, cert: c}
	s.mu.Unlock()
	return c, nil
}

func stat(p string) (fileid.ID, error) {
	id, err := fileid.Stat(p)
	if err != nil {
		return fileid.ID{}, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	return id, nil
}

// load reads one PEM file holding a certificate chain and its key.
func load(p string) (*tls.Certificate, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", p, errText(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", p, errText(err))
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, maxFileSize)
	}
	c, err := tls.X509KeyPair(b, b)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", p, explain(err))
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("%s: certificate: %v", p, err)
	}
	c.Leaf = leaf
	return &c, nil
}

// explain turns crypto/tls's key-pair errors into what an administrator must fix.
func explain(err error) string {
	m := err.Error()
	switch {
	case strings.Contains(m, "does not match"):
		return "the private key does not match the certificate"
	case strings.Contains(m, "failed to find") && strings.Contains(m, "certificate input"):
		return "no PEM certificate found (the file must hold the certificate chain and the private key)"
	case strings.Contains(m, "failed to find") && strings.Contains(m, "key input"),
		strings.Contains(m, "rather than a key"):
		return "no PEM private key found (the file must hold the certificate chain and the private key)"
	}
	return strings.TrimPrefix(m, "tls: ")
}

func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func (s *Store) logf(format string, args ...any) {
	if s.Log != nil {
		fmt.Fprintf(s.Log, format+"\n", args...)
	}
}

// Expiring returns, for each loaded certificate whose leaf is outside its validity
// period at t, a line naming the file and the dates; qmail-smtpd logs them at
// start-up. An expired certificate is still served: refusing TLS would push
// clients to plain text or stop mail altogether.
func (s *Store) Expiring(t time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for p, e := range s.cache {
		l := e.cert.Leaf
		if t.After(l.NotAfter) {
			out = append(out, fmt.Sprintf("%s: certificate expired on %s", p, l.NotAfter.UTC().Format(time.RFC3339)))
		} else if t.Before(l.NotBefore) {
			out = append(out, fmt.Sprintf("%s: certificate not valid before %s", p, l.NotBefore.UTC().Format(time.RFC3339)))
		}
	}
	return out
}
