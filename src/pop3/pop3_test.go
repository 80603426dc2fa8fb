package pop3_test

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/certs/testca"
	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/testpeer"
	"golang.org/x/crypto/bcrypt"
)

const password = "secret pw"

// checkpassword is a checkpassword in the shell, as sites write them: it reads
// user\0password\0 from descriptor 3, then runs its arguments in the user's home.
const checkpassword = `#!/bin/bash
IFS= read -r -d '' user <&3 || exit 1
IFS= read -r -d '' pass <&3 || exit 1
exec 3<&-
[ "$user" = alice ] && [ "$pass" = '` + password + `' ] || exit 1
cd "$POPHOME" || exit 111
exec "$@"
`

// apopCheckpassword accepts either the password or an APOP digest of the
// timestamp qmail-popup passes third.
const apopCheckpassword = `#!/bin/bash
IFS= read -r -d '' user <&3 || exit 1
IFS= read -r -d '' pass <&3 || exit 1
IFS= read -r -d '' stamp <&3 || exit 1
exec 3<&-
digest=$(printf '%s%s' "$stamp" '` + password + `' | md5sum | cut -d' ' -f1)
[ "$user" = alice ] && [ "$pass" = "$digest" ] || exit 1
cd "$POPHOME" || exit 111
exec "$@"
`

type popServer struct {
	h    *sandbox.Home
	addr string
	ca   string // CA certificate file for clients
	log  *sandbox.Log
}

func writeOwned(t *testing.T, h *sandbox.Home, p, s string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
	for q := p; strings.HasPrefix(q, h.Dir+"/"); q = filepath.Dir(q) {
		os.Chown(q, h.UID, h.GID)
	}
}

// newServer starts qmail-popup on a loopback port with a test certificate, alice's
// Maildir holding two messages, and env for the listener.
func newServer(t *testing.T, tlsCert bool, env ...string) *popServer {
	t.Helper()
	h := sandbox.New(t, sandbox.Options{})
	s := &popServer{h: h, log: &sandbox.Log{}}
	if tlsCert {
		ca := testca.New(t)
		writeOwned(t, h, filepath.Join(h.Dir, "control", "servercert.pem"), string(ca.Valid(t, "pop.sandbox.example", "127.0.0.1")), 0600)
		s.ca = testca.WriteFile(t, t.TempDir(), "ca.pem", ca.PEM)
	}
	md := h.Maildir("alice")
	writeOwned(t, h, filepath.Join(md, "cur", "1700000000.M1P1.sandbox:2,S"), "Subject: old\n\nseen before\n", 0600)
	writeOwned(t, h, filepath.Join(md, "new", "1700000100.M2P2.sandbox"), "Subject: new\nX-Test: 1\n\nline one\n.starts with a dot\nline three\n", 0600)
	os.Chtimes(filepath.Join(md, "cur", "1700000000.M1P1.sandbox:2,S"), time.Unix(1700000000, 0), time.Unix(1700000000, 0))
	os.Chtimes(filepath.Join(md, "new", "1700000100.M2P2.sandbox"), time.Unix(1700000100, 0), time.Unix(1700000100, 0))
	script := filepath.Join(h.Dir, "checkpw.sh")
	writeOwned(t, h, script, checkpassword, 0755)
	s.addr = freePort(t)
	cmd := h.Command("qmail-popup", "-l", s.addr, "pop.sandbox.example", script, filepath.Join(h.Bin, "qmail-pop3d"), "Maildir")
	cmd.Env = append(cmd.Env, "POPHOME="+h.UserHome("alice"))
	cmd.Env = append(cmd.Env, env...)
	s.start(t, cmd)
	return s
}

// The classic chain under tcpserver: qmail-popup on the socket's descriptors runs
// qmail-chkpw, which checks control/passwords and runs qmail-pop3d in the user's home.
func TestTcpserverChkpwChain(t *testing.T) {
	testpeer.Need(t, "tcpserver")
	testpeer.Need(t, "python3")
	s := newServer(t, true)
	h := s.h
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	writeOwned(t, h, filepath.Join(h.Dir, "control", "passwords"),
		fmt.Sprintf("alice:%s:%d:%d:%s\n", hash, h.UID, h.GID, h.UserHome("alice")), 0600)
	addr := freePort(t)
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("tcpserver", "-R", "-H", host, port,
		filepath.Join(h.Bin, "qmail-popup"), "pop.sandbox.example", filepath.Join(h.Bin, "qmail-chkpw"), filepath.Join(h.Bin, "qmail-pop3d"), "Maildir")
	cmd.Env = append(h.Env(), "POP3PLAINTEXT=1") // as a tcprules rule for the LAN would
	tcp := &popServer{h: h, addr: addr, ca: s.ca, log: &sandbox.Log{}}
	tcp.start(t, cmd)

	r := tcp.poplib(t, "stls", "alice", "wrong")
	if r.Error != "-ERR authorization failed" {
		t.Fatalf("wrong password: %+v\n%s", r, tcp.log.String())
	}
	r = tcp.poplib(t, "stls", "alice", password)
	if r.Error != "" || len(r.Stat) != 2 || r.Stat[0] != 2 || r.Retr1 != "Subject: old\n\nseen before" {
		t.Fatalf("%+v\n%s", r, tcp.log.String())
	}
	// In clear text, qmail-pop3d gets the socket itself.
	r = tcp.poplib(t, "plain", "alice", password)
	if len(r.Stat) != 2 || r.Stat[0] != 1 || !strings.Contains(r.Retr1, "line one") {
		t.Fatalf("after DELE and QUIT: %+v", r)
	}
	r = tcp.poplib(t, "plain", "alice", password)
	if len(r.Stat) != 2 || r.Stat[0] != 0 {
		t.Fatalf("after the last DELE: %+v", r)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs the server command until the test ends and waits until it listens.
func (s *popServer) start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	})
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", s.addr); err == nil {
			c.Close()
			break
		}
		if i == 500 {
			t.Fatalf("qmail-popup does not listen:\n%s", s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type session struct {
	Greeting    string   `json:"greeting"`
	Capa        []string `json:"capa"`
	CapaTLS     []string `json:"capa_tls"`
	Error       string   `json:"error"`
	Stat        []int    `json:"stat"`
	List        []string `json:"list"`
	UIDL        []string `json:"uidl"`
	Retr1       string   `json:"retr1"`
	Top1        string   `json:"top1"`
	RetrDeleted string   `json:"retr_deleted"`
	Quit        string   `json:"quit"`
}

func (s *popServer) poplib(t *testing.T, mode, user, pass string) session {
	t.Helper()
	host, port, _ := net.SplitHostPort(s.addr)
	ca := s.ca
	if ca == "" {
		ca = "-"
	}
	out, err := exec.Command("python3", "testdata/client.py", host, port, ca, mode, user, pass).CombinedOutput()
	if err != nil {
		t.Fatalf("poplib: %v\n%s\nserver log:\n%s", err, out, s.log.String())
	}
	var r session
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("poplib output %q: %v", out, err)
	}
	return r
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestPoplibSTLS(t *testing.T) {
	testpeer.Need(t, "python3")
	s := newServer(t, true)
	r := s.poplib(t, "stls", "alice", password)
	if !strings.HasPrefix(r.Greeting, "+OK <") || !strings.HasSuffix(r.Greeting, "@pop.sandbox.example>") {
		t.Errorf("greeting %q", r.Greeting)
	}
	if !has(r.Capa, "STLS") || has(r.Capa, "USER") || has(r.CapaTLS, "STLS") || !has(r.CapaTLS, "USER") {
		t.Errorf("capabilities before TLS %v, after %v", r.Capa, r.CapaTLS)
	}
	if r.Error != "" {
		t.Fatalf("login: %s\n%s", r.Error, s.log.String())
	}
	msg := "Subject: new\nX-Test: 1\n\nline one\n.starts with a dot\nline three\n"
	if len(r.Stat) != 2 || r.Stat[0] != 2 || r.Stat[1] != len("Subject: old\n\nseen before\n")+len(msg) {
		t.Errorf("stat %v", r.Stat)
	}
	if len(r.List) != 2 || r.List[1] != fmt.Sprintf("2 %d", len(msg)) {
		t.Errorf("list %v", r.List)
	}
	if len(r.UIDL) != 2 || r.UIDL[0] != "1 1700000000.M1P1.sandbox" || r.UIDL[1] != "2 1700000100.M2P2.sandbox" {
		t.Errorf("uidl %v", r.UIDL)
	}
	if r.Retr1 != "Subject: old\n\nseen before" {
		t.Errorf("retr 1: %q", r.Retr1)
	}
	if r.Top1 != "Subject: old\n\nseen before" {
		t.Errorf("top 1 1: %q", r.Top1)
	}
	if !strings.HasPrefix(r.RetrDeleted, "-ERR") {
		t.Errorf("retr of a deleted message: %q", r.RetrDeleted)
	}
	// The deletion took effect at QUIT; the new message moved to cur/.
	md := s.h.Maildir("alice")
	if _, err := os.Stat(filepath.Join(md, "cur", "1700000000.M1P1.sandbox:2,S")); !os.IsNotExist(err) {
		t.Errorf("deleted message still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(md, "cur", "1700000100.M2P2.sandbox:2,")); err != nil {
		t.Errorf("new message not moved to cur/: %v", err)
	}
	r = s.poplib(t, "stls", "alice", password)
	if len(r.Stat) != 2 || r.Stat[0] != 1 {
		t.Fatalf("second session: stat %v", r.Stat)
	}
	// Dot-stuffing undone by the client, TOP with one body line.
	if r.Retr1 != strings.TrimSuffix(msg, "\n") {
		t.Errorf("retr: %q", r.Retr1)
	}
	if r.Top1 != "Subject: new\nX-Test: 1\n\nline one" {
		t.Errorf("top: %q", r.Top1)
	}
}

func TestPlaintextRefusedWithoutTLS(t *testing.T) {
	testpeer.Need(t, "python3")
	s := newServer(t, true)
	r := s.poplib(t, "plain", "alice", password)
	if !strings.Contains(r.Error, "-ERR [AUTH] plain-text passwords need an encrypted connection") {
		t.Fatalf("plain-text login without TLS: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(s.h.Maildir("alice"), "new", "1700000100.M2P2.sandbox")); err != nil {
		t.Errorf("mailbox touched: %v", err)
	}
}

func TestPlaintextAllowedWhenConfigured(t *testing.T) {
	testpeer.Need(t, "python3")
	s := newServer(t, false, "POP3PLAINTEXT=1")
	r := s.poplib(t, "plain", "alice", password)
	if r.Error != "" || len(r.Stat) != 2 || r.Stat[0] != 2 || has(r.Capa, "STLS") || !has(r.Capa, "USER") {
		t.Fatalf("%+v\n%s", r, s.log.String())
	}
}

func TestWrongPasswordNeverOpensTheMailbox(t *testing.T) {
	testpeer.Need(t, "python3")
	s := newServer(t, true, "POP3PLAINTEXT=1")
	md := s.h.Maildir("alice")
	for _, c := range []struct{ mode, user, pass string }{
		{"stls", "alice", "wrong"}, {"plain", "alice", ""}, {"plain", "alice", password + "x"},
		{"stls", "mallory", password}, {"plain", "alice\x01", password},
	} {
		r := s.poplib(t, c.mode, c.user, c.pass)
		if r.Error != "-ERR authorization failed" || r.Stat != nil {
			t.Errorf("%+v: %+v", c, r)
		}
	}
	// After a failed check the connection is over: nothing more is answered.
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "USER alice\r\nPASS nope\r\nSTAT\r\nLIST\r\n")
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	var all bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		all.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if got := all.String(); strings.Count(got, "+OK") != 2 || !strings.HasSuffix(got, "-ERR authorization failed\r\n") {
		t.Errorf("session: %q", got)
	}
	for _, p := range []string{"new/1700000100.M2P2.sandbox", "cur/1700000000.M1P1.sandbox:2,S"} {
		if _, err := os.Stat(filepath.Join(md, p)); err != nil {
			t.Errorf("mailbox changed: %v", err)
		}
	}
}

// APOP sends no password in clear text: it works without TLS, where USER/PASS is
// refused.
func TestAPOP(t *testing.T) {
	s := newServer(t, false)
	writeOwned(t, s.h, filepath.Join(s.h.Dir, "checkpw.sh"), apopCheckpassword, 0755)
	session := func(digest func(stamp string) string) string {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		r := bufio.NewReader(c)
		greeting, _ := r.ReadString('\n')
		i, j := strings.IndexByte(greeting, '<'), strings.IndexByte(greeting, '>')
		if !strings.HasPrefix(greeting, "+OK <") || j < i {
			t.Fatalf("greeting %q", greeting)
		}
		fmt.Fprintf(c, "APOP alice %s\r\nSTAT\r\nQUIT\r\n", digest(greeting[i:j+1]))
		rest, _ := io.ReadAll(r)
		return string(rest)
	}
	good := session(func(stamp string) string { return fmt.Sprintf("%x", md5.Sum([]byte(stamp+password))) })
	if !strings.HasPrefix(good, "+OK \r\n+OK 2 ") {
		t.Errorf("APOP with the right digest: %q\n%s", good, s.log.String())
	}
	bad := session(func(stamp string) string { return fmt.Sprintf("%x", md5.Sum([]byte("<1.2@other>"+password))) })
	if bad != "-ERR authorization failed\r\n" {
		t.Errorf("APOP with a replayed digest: %q", bad)
	}
}

func TestOpensslStarttls(t *testing.T) {
	testpeer.Need(t, "openssl")
	s := newServer(t, true)
	cmd := exec.Command("openssl", "s_client", "-connect", s.addr, "-starttls", "pop3", "-CAfile", s.ca,
		"-verify_return_error", "-quiet", "-crlf")
	cmd.Stdin = strings.NewReader("USER alice\nPASS " + password + "\nSTAT\nUIDL 2\nQUIT\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v\n%s\n%s", err, out, s.log.String())
	}
	for _, want := range []string{"+OK 2 ", "+OK 2 1700000100.M2P2.sandbox\r\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("openssl session lacks %q:\n%s", want, out)
		}
	}
}
