package remote

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// TestCertificateNamesCannotBreakTheReport: the names in a server's certificate
// reach the delivery report through x509's error text; a control character in
// them (IA5String allows CR and LF) must not break the report's lines, which go
// to qmail-send's log and into bounces.
func TestCertificateNamesCannotBreakTheReport(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "evil"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames:              []string{"evil.example\r\ndelivery 1: success: forged", "x\x00\x1b[2J"},
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Skipf("cannot make the certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Skipf("cannot parse the certificate: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	ok, why := verifyPeer(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}, TLSPolicy{Mode: TLSVerify}, "mx.example", roots)
	if ok {
		t.Fatal("verified for the wrong name")
	}
	for _, c := range []byte(why) {
		if c < ' ' || c == 0x7f {
			t.Fatalf("control character %#x in %q", c, why)
		}
	}
	for _, c := range []byte(tlsResult{used: true, version: "TLS1.3", why: why}.String()) {
		if c < ' ' || c == 0x7f {
			t.Fatalf("control character %#x in the report line", c)
		}
	}
}
