package release

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/packaging/manifest"
	"github.com/notqmail/notqmail/src/testpeer"
)

// Packages signed with throwaway keys from the environment verify with each format's
// own tools: gpg for the deb's _gpgorigin, rpmkeys for the rpm, openssl for the apk.
func TestSignedPackagesVerify(t *testing.T) {
	t.Parallel()
	packaged(t) // the snapshot
	gpg := testpeer.Need(t, "gpg")
	rpmkeys := testpeer.Need(t, "rpmkeys")
	openssl := testpeer.Need(t, "openssl")
	dir := t.TempDir()

	// An OpenPGP key without a passphrase, in a private keyring.
	gh := filepath.Join(dir, "g")
	os.Mkdir(gh, 0o700)
	gpgRun := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(gpg, append([]string{"--homedir", gh, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, out)
		}
		return out
	}
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", gh, "--kill", "all").Run() })
	gpgRun("--quick-gen-key", "notqmail test <test@notqmail.invalid>", "rsa2048", "sign", "never")
	secret := filepath.Join(dir, "secret.asc")
	os.WriteFile(secret, gpgRun("--armor", "--export-secret-keys"), 0o600)
	public := filepath.Join(dir, "public.asc")
	os.WriteFile(public, gpgRun("--armor", "--export"), 0o644)

	// An RSA key for the apk.
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	apkKey := filepath.Join(dir, "apk.rsa")
	os.WriteFile(apkKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), 0o600)
	pubDER, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	apkPub := filepath.Join(dir, "apk.rsa.pub")
	os.WriteFile(apkPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644)

	keys := &manifest.SignConfig{PGPKey: secret, APKKey: apkKey, APKName: "test@notqmail.invalid.rsa.pub"}
	var log bytes.Buffer
	dist := filepath.Join(dir, "dist")
	arts, err := Package(context.Background(), Options{Root: snapshotRoot(), Build: filepath.Join(dir, "build"), Dist: dist, Arches: []string{hostArch()}, Log: &log, Sign: keys})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}

	for _, d := range find(arts, ".deb") {
		members := arMembers(t, filepath.Join(dist, d))
		sig, ok := members["_gpgorigin"]
		if !ok {
			t.Errorf("%s: no _gpgorigin member", d)
			continue
		}
		signed := filepath.Join(dir, "signed-data")
		os.WriteFile(signed, append(append(append([]byte{}, members["debian-binary"]...), members["control.tar.gz"]...), members["data.tar.gz"]...), 0o644)
		sigFile := filepath.Join(dir, "sig.asc")
		os.WriteFile(sigFile, sig, 0o644)
		gpgRun("--verify", sigFile, signed)
	}

	db := filepath.Join(dir, "rpmdb")
	os.Mkdir(db, 0o755)
	if out, err := exec.Command(rpmkeys, "--dbpath", db, "--import", public).CombinedOutput(); err != nil {
		t.Fatalf("rpmkeys --import: %v\n%s", err, out)
	}
	for _, r := range find(arts, ".rpm") {
		out, err := exec.Command(rpmkeys, "--dbpath", db, "-Kv", filepath.Join(dist, r)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Header V4 RSA/SHA256 Signature, key ID") || strings.Contains(string(out), "NOKEY") {
			t.Errorf("rpmkeys -K %s: %v\n%s", r, err, out)
		}
	}

	for _, a := range find(arts, ".apk") {
		b, _ := os.ReadFile(filepath.Join(dist, a))
		sigStream, control := gzipMembers(t, b)
		name, sig := firstTarFile(t, sigStream)
		if name != ".SIGN.RSA.test@notqmail.invalid.rsa.pub" {
			t.Errorf("%s: signature member %q", a, name)
		}
		os.WriteFile(filepath.Join(dir, "apk.sig"), sig, 0o644)
		os.WriteFile(filepath.Join(dir, "control.tar.gz"), control, 0o644)
		out, err := exec.Command(openssl, "dgst", "-sha1", "-verify", apkPub, "-signature", filepath.Join(dir, "apk.sig"), filepath.Join(dir, "control.tar.gz")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Verified OK") {
			t.Errorf("%s: openssl: %v\n%s", a, err, out)
		}
	}
}

// arMembers reads a deb's ar archive.
func arMembers(t *testing.T, p string) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil || !bytes.HasPrefix(b, []byte("!<arch>\n")) {
		t.Fatalf("%s: not an ar archive: %v", p, err)
	}
	m := map[string][]byte{}
	for off := 8; off+60 <= len(b); {
		h := b[off : off+60]
		name := strings.TrimSuffix(strings.TrimSpace(string(h[0:16])), "/")
		size, err := strconv.Atoi(strings.TrimSpace(string(h[48:58])))
		if err != nil || off+60+size > len(b) {
			t.Fatalf("%s: bad ar header at %d", p, off)
		}
		m[name] = b[off+60 : off+60+size]
		off += 60 + size + size%2
	}
	return m
}

// gzipMembers splits an apk into its signature stream and its control stream.
func gzipMembers(t *testing.T, b []byte) (sig []byte, control []byte) {
	t.Helper()
	var bounds []int
	r := bytes.NewReader(b)
	for len(bounds) < 2 {
		start := len(b) - r.Len()
		z, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		z.Multistream(false)
		if _, err := io.Copy(io.Discard, z); err != nil {
			t.Fatal(err)
		}
		bounds = append(bounds, start)
	}
	end := len(b) - r.Len()
	sig = b[bounds[0]:bounds[1]]
	return sig, b[bounds[1]:end]
}

// firstTarFile returns the first file of a gzipped tar stream without its end blocks.
func firstTarFile(t *testing.T, gz []byte) (string, []byte) {
	t.Helper()
	z, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(z)
	if len(raw) < 512 {
		t.Fatal("short signature tar")
	}
	name := strings.TrimRight(string(raw[0:100]), "\x00")
	size, err := strconv.ParseInt(strings.TrimSpace(strings.TrimRight(string(raw[124:136]), "\x00")), 8, 64)
	if err != nil || 512+int(size) > len(raw) {
		t.Fatalf("bad tar header: %v", err)
	}
	return name, raw[512 : 512+size]
}
