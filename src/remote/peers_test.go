package remote

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/testpeer"
)

// testCA is a self-made CA and a server certificate it signed for mx.example.test and
// 127.0.0.1, written as PEM files.
type testCA struct {
	Pool      *x509.CertPool
	CAFile    string // the CA certificate
	ClientPEM string // a client certificate for client.example.test and its key
	CertFile  string // server certificate
	KeyFile   string // server key
	Leaf      *x509.Certificate
}

func makeCA(t testing.TB, dir string) *testCA {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "notqmail test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "mx.example.test"},
		DNSNames:     []string{"mx.example.test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	ca := &testCA{Pool: x509.NewCertPool(), CertFile: filepath.Join(dir, "server.pem"), KeyFile: filepath.Join(dir, "server.key"), Leaf: leaf, CAFile: filepath.Join(dir, "ca.pem")}
	ca.Pool.AddCert(caCert)
	if err := os.WriteFile(ca.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0644); err != nil {
		t.Fatal(err)
	}
	ckey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ctmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: "client.example.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	cder, err := x509.CreateCertificate(rand.Reader, ctmpl, caCert, &ckey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ckeyDER, _ := x509.MarshalECPrivateKey(ckey)
	ca.ClientPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cder})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ckeyDER}))
	var chain bytes.Buffer
	pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	// The key is a throwaway test key; Postfix's smtpd must be able to read it.
	if err := os.WriteFile(ca.CertFile, chain.Bytes(), 0644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0644); err != nil {
		t.Fatal(err)
	}
	return ca
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening waits until something accepts connections on addr, or the process
// behind it has plainly failed to start.
func waitListening(t testing.TB, addr string, what string, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never listened on %s: %v\n%s", what, addr, err, logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sharedDir makes a directory that Postfix's and smtp-sink's unprivileged users can
// traverse, removed when the test ends.
func sharedDir(t testing.TB, prefix string) string {
	t.Helper()
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0755)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// sink is a running smtp-sink.
type sink struct {
	Port int
	Dump string // directory of captured transactions (with -d)
}

// startSink runs Postfix's smtp-sink on 127.0.0.1 with extra options, capturing
// every transaction into a directory, and stops it when the test ends.
func startSink(t testing.TB, opts ...string) *sink {
	t.Helper()
	bin := testpeer.Need(t, "smtp-sink")
	dir := sharedDir(t, "nq-sink-")
	os.Chmod(dir, 0777) // smtp-sink writes as nobody
	s := &sink{Port: freePort(t), Dump: dir}
	args := append([]string{}, opts...)
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	args = append(args, "-d", dir+"/%M.", fmt.Sprintf("127.0.0.1:%d", s.Port), "256")
	cmd := exec.Command(bin, args...)
	// Dies with the test binary even when a panic skips the cleanup (as long as it
	// did not switch users with -u, which clears the setting).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", s.Port), "smtp-sink", errb.String)
	return s
}

// Messages returns the captured transactions.
func (s *sink) Messages(t testing.TB) []string {
	t.Helper()
	ents, err := os.ReadDir(s.Dump)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(s.Dump, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// postfixServer is a real Postfix listening on 127.0.0.1, with its own configuration
// and queue, that keeps what it accepts in its incoming queue (no qmgr runs) so a
// test can read the stored message with postcat.
type postfixServer struct {
	Dir  string
	Port int
	CA   *testCA
}

var (
	postfixOnce sync.Once
	postfixSrv  *postfixServer
	postfixErr  error
	postfixStop func()
)

// Recipients of the Postfix server that are refused: temporarily, permanently.
const (
	pfTempRcpt = "temp@example.test"
	pfPermRcpt = "perm@example.test"
	pfSizeLim  = 200000
)

// startPostfix returns the test binary's Postfix, starting it on first use. It is
// stopped by TestMain.
func startPostfix(t testing.TB) *postfixServer {
	t.Helper()
	bin := testpeer.Need(t, "postfix")
	if os.Geteuid() != 0 {
		t.Skip("running Postfix needs root")
	}
	postfixOnce.Do(func() { postfixSrv, postfixErr = launchPostfix(t, bin) })
	if postfixErr != nil {
		t.Fatal(postfixErr)
	}
	return postfixSrv
}

func launchPostfix(t testing.TB, bin string) (*postfixServer, error) {
	d, err := os.MkdirTemp("", "nq-postfix-")
	if err != nil {
		return nil, err
	}
	os.Chmod(d, 0755)
	for _, sub := range []string{"etc", "spool"} {
		if err := os.Mkdir(filepath.Join(d, sub), 0755); err != nil {
			return nil, err
		}
	}
	etc := filepath.Join(d, "etc")
	ca := makeCA(t, etc)
	port := freePort(t)
	mainCF := strings.Join([]string{
		"compatibility_level = 3.6",
		"queue_directory = " + d + "/spool",
		"data_directory = " + d + "/data",
		"myhostname = postfix.example.test",
		"mydestination =",
		"inet_interfaces = 127.0.0.1",
		"inet_protocols = ipv4",
		"mynetworks = 127.0.0.0/8",
		"relay_domains = example.test",
		"smtpd_relay_restrictions = permit_mynetworks, reject",
		"smtpd_recipient_restrictions = check_recipient_access texthash:" + etc + "/rcpt, permit",
		"maillog_file_prefixes = " + d,
		"maillog_file = " + d + "/maillog",
		"message_size_limit = " + strconv.Itoa(pfSizeLim),
		"smtpd_tls_security_level = may",
		"smtpd_tls_chain_files = " + ca.KeyFile + ", " + ca.CertFile,
		"smtputf8_enable = yes",
		"smtpd_tls_ask_ccert = yes",
		"smtpd_tls_CAfile = " + ca.CAFile,
		"smtpd_tls_received_header = yes",
		"",
	}, "\n")
	masterCF := strings.Join([]string{
		fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd", port),
		"cleanup unix n - n - 0 cleanup",
		"rewrite unix - - n - - trivial-rewrite",
		"anvil unix - - n - 1 anvil",
		"tlsmgr unix - - n 1000? 1 tlsmgr",
		"proxymap unix - - n - - proxymap",
		"postlog unix-dgram n - n - 1 postlogd",
		"",
	}, "\n")
	rcpt := pfTempRcpt + " 450 4.2.0 try again later\n" + pfPermRcpt + " 550 5.1.1 no such user here\n"
	for name, text := range map[string]string{"main.cf": mainCF, "master.cf": masterCF, "rcpt": rcpt} {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(text), 0644); err != nil {
			return nil, err
		}
	}
	run := func(args ...string) (string, error) {
		// postfix reports errors on stderr only to a terminal; its log file has them.
		out, err := exec.Command(bin, append([]string{"-c", etc}, args...)...).CombinedOutput()
		logb, _ := os.ReadFile(filepath.Join(d, "maillog"))
		return string(out) + string(logb), err
	}
	if out, err := run("start"); err != nil {
		os.RemoveAll(d)
		return nil, fmt.Errorf("postfix start: %v\n%s", err, out)
	}
	postfixStop = func() {
		run("stop")
		os.RemoveAll(d)
	}
	srv := &postfixServer{Dir: d, Port: port, CA: ca}
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", port), "postfix", func() string { s, _ := run("status"); return s })
	return srv, nil
}

// Stored returns the message Postfix queued under id, as postcat shows its body.
func (p *postfixServer) Stored(t testing.TB, id string) string {
	t.Helper()
	out, err := exec.Command("postcat", "-c", filepath.Join(p.Dir, "etc"), "-bh", "-q", id).CombinedOutput()
	if err != nil {
		t.Fatalf("postcat %s: %v\n%s", id, err, out)
	}
	return string(out)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if postfixStop != nil {
		postfixStop()
	}
	os.Exit(code)
}

// recorder is a TCP proxy on 127.0.0.1 that records what the client sends, to check
// the bytes that really leave.
type recorder struct {
	Addr  string
	mu    sync.Mutex
	sent  bytes.Buffer
	conns int
}

// Conns returns how many connections the proxy accepted.
func (r *recorder) Conns() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns
}

func startRecorder(t testing.TB, target string) *recorder {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{Addr: l.Addr().String()}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns++
			r.mu.Unlock()
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(c, s); c.Close() }()
			go func() {
				io.Copy(s, io.TeeReader(c, lockedWriter{r})) // recorded before the server sees it
				s.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return r
}

type lockedWriter struct{ r *recorder }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	return w.r.sent.Write(p)
}

func (r *recorder) Sent() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent.String()
}
