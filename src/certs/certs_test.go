package certs_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/certs"
	"github.com/notqmail/notqmail/src/certs/testca"
	"github.com/notqmail/notqmail/src/control"
)

// handshake runs a real TLS handshake over a socket pair against the store and
// returns the leaf the client was shown.
func handshake(t *testing.T, st *certs.Store, ca *testca.CA, sni string) (string, error) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv := tls.Server(a, st.Config())
	go func() { srv.Handshake(); srv.Close() }()
	cli := tls.Client(b, &tls.Config{ServerName: sni, RootCAs: ca.Pool(), InsecureSkipVerify: sni == ""})
	if err := cli.Handshake(); err != nil {
		return "", err
	}
	return cli.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func TestSNIAndDefault(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t)
	testca.WriteFile(t, dir, "servercert.pem", ca.Valid(t, "mail.example.net"))
	testca.WriteFile(t, dir, "tls/one.example.org.pem", ca.Valid(t, "one.example.org"))
	testca.WriteFile(t, dir, "tls/two.example.com.pem", ca.Valid(t, "two.example.com"))
	testca.WriteFile(t, dir, "tls/*.wild.example.pem", ca.Valid(t, "*.wild.example"))
	st, err := certs.Open(control.Open(dir))
	if err != nil {
		t.Fatal(err)
	}
	for sni, want := range map[string]string{
		"one.example.org":  "one.example.org",
		"ONE.Example.ORG":  "one.example.org",
		"two.example.com":  "two.example.com",
		"a.wild.example":   "*.wild.example",
		"mail.example.net": "mail.example.net",
		"":                 "mail.example.net",
	} {
		got, err := handshake(t, st, ca, sni)
		if err != nil {
			t.Errorf("SNI %q: %v", sni, err)
			continue
		}
		if got != want {
			t.Errorf("SNI %q: got certificate %q, want %q", sni, got, want)
		}
	}
}

func TestHostileSNINeverReachesFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t)
	testca.WriteFile(t, dir, "servercert.pem", ca.Valid(t, "mail.example.net"))
	// A file a path-traversing name would hit.
	testca.WriteFile(t, dir, "secret.pem", ca.Valid(t, "secret"))
	st, err := certs.Open(control.Open(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, sni := range []string{"../secret", "..", "a/../../secret", "x\x00y", strings.Repeat("a", 300)} {
		c, err := st.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
		if err != nil {
			t.Fatalf("%q: %v", sni, err)
		}
		if c.Leaf.Subject.CommonName != "mail.example.net" {
			t.Errorf("SNI %q got %q", sni, c.Leaf.Subject.CommonName)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	ca := testca.New(t)
	good := ca.Valid(t, "a.example")
	other := ca.Valid(t, "b.example")
	certOnly := good[:bytes.Index(good, []byte("-----BEGIN PRIVATE KEY"))]
	keyOther := other[bytes.Index(other, []byte("-----BEGIN PRIVATE KEY")):]
	for _, c := range []struct {
		name, file string
		body       []byte
		want       string
	}{
		{"mismatched key", "servercert.pem", append(append([]byte{}, certOnly...), keyOther...), "private key does not match the certificate"},
		{"no key", "servercert.pem", certOnly, "no PEM private key found"},
		{"no certificate", "servercert.pem", keyOther, "no PEM certificate found"},
		{"garbage", "servercert.pem", []byte("hello\n"), "no PEM certificate found"},
		{"bad SNI file", "tls/x.example.pem", certOnly, "tls/x.example.pem: no PEM private key found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.file != "servercert.pem" {
				testca.WriteFile(t, dir, "servercert.pem", good)
			}
			testca.WriteFile(t, dir, c.file, c.body)
			_, err := certs.Open(control.Open(dir))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("got %v, want an error naming the file and %q", err, c.want)
			}
		})
	}
	// OpenDefault leaves a broken SNI file to the handshake that asks for it,
	// which then gets the default certificate.
	dir := t.TempDir()
	testca.WriteFile(t, dir, "servercert.pem", good)
	testca.WriteFile(t, dir, "tls/x.example.pem", certOnly)
	st, err := certs.OpenDefault(control.Open(dir))
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	st.Log = &log
	c, err := st.GetCertificate(&tls.ClientHelloInfo{ServerName: "x.example"})
	if err != nil || c.Leaf.Subject.CommonName != "a.example" || !strings.Contains(log.String(), "tls/x.example.pem: no PEM private key found") {
		t.Fatalf("broken SNI file: %v %q", err, log.String())
	}
	_, err = certs.Open(control.Open(t.TempDir()))
	if !errors.Is(err, certs.ErrNoCertificate) || !strings.Contains(err.Error(), "servercert.pem") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestReloadKeepsSessions(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t)
	p := testca.WriteFile(t, dir, "servercert.pem", ca.Valid(t, "old.example"))
	st, err := certs.Open(control.Open(dir))
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	st.Log = &log

	// A session established with the old certificate.
	a, b := net.Pipe()
	srv := tls.Server(a, st.Config())
	go func() {
		srv.Handshake()
		buf := make([]byte, 5)
		n, _ := srv.Read(buf)
		srv.Write(buf[:n])
	}()
	cli := tls.Client(b, &tls.Config{ServerName: "old.example", RootCAs: ca.Pool()})
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}

	// Renewed: replaced by rename, as certbot-like tools do.
	tmp := testca.WriteFile(t, dir, "new.tmp", ca.Valid(t, "new.example"))
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	if got, err := handshake(t, st, ca, "new.example"); err != nil || got != "new.example" {
		t.Fatalf("after renewal: %q %v", got, err)
	}
	// The old session still works.
	cli.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := cli.Read(buf); err != nil || string(buf) != "hello" {
		t.Fatalf("old session: %q %v", buf, err)
	}
	b.Close() // not cli.Close: nobody reads its close_notify on the pipe

	// Caught half-written: the last good certificate stays, and the log says why.
	if err := os.WriteFile(p, []byte("-----BEGIN CERT"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := handshake(t, st, ca, "new.example"); err != nil || got != "new.example" {
		t.Fatalf("after a broken write: %q %v", got, err)
	}
	// Removed: still served; an SNI file removed is no longer used.
	testca.WriteFile(t, dir, "tls/gone.example.pem", ca.Valid(t, "gone.example"))
	if got, _ := handshake(t, st, ca, "gone.example"); got != "gone.example" {
		t.Fatalf("SNI file: %q", got)
	}
	os.Remove(p)
	os.Remove(filepath.Join(dir, "tls/gone.example.pem"))
	if got, err := handshake(t, st, ca, "new.example"); err != nil || got != "new.example" {
		t.Fatalf("after removal: %q %v", got, err)
	}
	c, err := st.GetCertificate(&tls.ClientHelloInfo{ServerName: "gone.example"})
	if err != nil || c.Leaf.Subject.CommonName != "new.example" {
		t.Fatalf("removed SNI file still used: %v", err)
	}
	if !strings.Contains(log.String(), filepath.Join(dir, "servercert.pem")+": no PEM certificate found") ||
		!strings.Contains(log.String(), "keeping the certificate loaded before") {
		t.Fatalf("log: %q", log.String())
	}
}

func TestExpiring(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t)
	now := time.Now()
	testca.WriteFile(t, dir, "servercert.pem", ca.Issue(t, []string{"old.example"}, now.Add(-48*time.Hour), now.Add(-time.Hour)))
	st, err := certs.Open(control.Open(dir))
	if err != nil {
		t.Fatal(err)
	}
	e := st.Expiring(now)
	if len(e) != 1 || !strings.Contains(e[0], "servercert.pem: certificate expired on") {
		t.Fatalf("%q", e)
	}
}
