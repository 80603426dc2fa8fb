package smtpd

import (
	"bufio"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/rcpthosts"
	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/testpeer"
)

func putControl(t testing.TB, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// cachedControls is a control directory for ConfigCache tests: me, rcpthosts
// (first.example) and morercpthosts.cdb (more.example).
func cachedControls(t testing.TB) control.Dir {
	t.Helper()
	dir := t.TempDir()
	putControl(t, dir, "me", "mx.example\n")
	putControl(t, dir, "rcpthosts", "first.example\n")
	putControl(t, dir, "morercpthosts", "more.example\n")
	if err := rcpthosts.NewMRH(dir); err != nil {
		t.Fatal(err)
	}
	return control.Open(dir)
}

// serveCached runs Run for every connection on a loopback listener, with the
// configuration from cc, and returns the address.
func serveCached(t *testing.T, cc *ConfigCache) string {
	t.Helper()
	return serveRun(t, RunOptions{Control: cc.Control, Configs: cc})
}

// serveRun runs Run with opt for every connection on a loopback listener, as the
// built-in listener does, and returns the address.
func serveRun(t *testing.T, opt RunOptions) string {
	t.Helper()
	return loopback(t, func(c net.Conn) {
		o := opt
		o.Env = Env{Over: map[string]string{"TCPREMOTEIP": "127.0.0.1", "NOSPP": "1"}}
		o.ID = "test"
		Run(c, o)
	})
}

// rcptScript asks, in one SMTP session per domain in $DOMAINS, whether RCPT TO
// x@domain is accepted, and prints "domain code" lines.
const rcptScript = `
import os, smtplib
for d in os.environ["DOMAINS"].split():
    s = smtplib.SMTP(os.environ["HOST"], int(os.environ["PORT"]), timeout=30)
    s.ehlo("client.example")
    s.mail("a@client.example")
    code, _ = s.rcpt("x@" + d)
    print(d, code)
    s.quit()
`

// Sessions that start within MaxAge of a reading share it: one reading of the
// control files for all of them, and an edit made meanwhile is not seen yet.
func TestConfigCacheSharedWithinWindow(t *testing.T) {
	py := testpeer.Need(t, "python3")
	ctl := cachedControls(t)
	var reads atomic.Int64
	cc := &ConfigCache{Control: ctl, MaxAge: time.Hour, onRead: func() { reads.Add(1) }}
	addr := serveCached(t, cc)
	out := python(t, py, addr, rcptScript, "DOMAINS=first.example more.example other.example")
	mustContain(t, out, "first.example 250", "more.example 250", "other.example 553")
	putControl(t, ctl.Path, "rcpthosts", "first.example\nother.example\n")
	out = python(t, py, addr, rcptScript, "DOMAINS=first.example other.example")
	mustContain(t, out, "first.example 250", "other.example 553")
	if n := reads.Load(); n != 1 {
		t.Errorf("5 sessions read the control files %d times, want once", n)
	}
}

// A session that starts after MaxAge reads the control files again and honours an
// edit of rcpthosts.
func TestConfigCacheEditAfterWindow(t *testing.T) {
	py := testpeer.Need(t, "python3")
	ctl := cachedControls(t)
	var reads atomic.Int64
	cc := &ConfigCache{Control: ctl, MaxAge: 200 * time.Millisecond, onRead: func() { reads.Add(1) }}
	addr := serveCached(t, cc)
	out := python(t, py, addr, rcptScript, "DOMAINS=other.example")
	mustContain(t, out, "other.example 553")
	putControl(t, ctl.Path, "rcpthosts", "other.example\n")
	time.Sleep(300 * time.Millisecond) // past the window
	out = python(t, py, addr, rcptScript, "DOMAINS=other.example first.example")
	mustContain(t, out, "other.example 250", "first.example 553")
	if n := reads.Load(); n < 2 {
		t.Errorf("the control files were read %d times, want a second reading after the window", n)
	}
}

// A session keeps its reading, morercpthosts.cdb included, after a newer reading
// replaces it for new sessions; the cdb is closed when the last session ends.
func TestConfigCacheOldReadingStaysUsable(t *testing.T) {
	ctl := cachedControls(t)
	cc := &ConfigCache{Control: ctl, MaxAge: time.Nanosecond}
	cfg1, close1, err := cc.Load(func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	old := cc.cur
	putControl(t, ctl.Path, "morercpthosts", "newer.example\n")
	if err := rcpthosts.NewMRH(ctl.Path); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	cfg2, close2, err := cc.Load(func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	defer close2()
	if cc.cur == old {
		t.Fatal("no new reading after MaxAge")
	}
	if ok, err := cfg1.RcptHosts("more.example"); !ok || err != nil {
		t.Errorf("the first session lost morercpthosts.cdb: %v %v", ok, err)
	}
	if ok, err := cfg2.RcptHosts("newer.example"); !ok || err != nil {
		t.Errorf("the second session does not see the new morercpthosts.cdb: %v %v", ok, err)
	}
	close1()
	close1() // twice is harmless
	// A closed Matcher no longer consults the cdb.
	if ok, _ := cfg1.RcptHosts("more.example"); ok || old.refs != 0 {
		t.Errorf("the replaced reading's cdb is still open after its last session (refs %d)", old.refs)
	}
	if ok, err := cfg2.RcptHosts("newer.example"); !ok || err != nil {
		t.Errorf("closing the old reading broke the new one: %v %v", ok, err)
	}
}

// An unreadable control file fails the session (421) and is not cached: once it
// is fixed the next session reads it again.
func TestConfigCacheErrorNotCached(t *testing.T) {
	ctl := cachedControls(t)
	var reads atomic.Int64
	cc := &ConfigCache{Control: ctl, MaxAge: time.Hour, onRead: func() { reads.Add(1) }}
	putControl(t, ctl.Path, "databytes", "lots\n")
	if _, _, err := cc.Load(func(string) (string, bool) { return "", false }); err == nil {
		t.Fatal("a bad databytes was accepted")
	}
	putControl(t, ctl.Path, "databytes", "1000\n")
	cfg, done, err := cc.Load(func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if cfg.DataBytes != 1000 || reads.Load() != 2 {
		t.Errorf("databytes %d after %d readings; want 1000 after 2", cfg.DataBytes, reads.Load())
	}
}

// The built-in listener (qmail-smtpd -l) honours an edit of rcpthosts in sessions
// that start DefaultConfigAge after it.
func TestListenerRereadsRcpthosts(t *testing.T) {
	py := testpeer.Need(t, "python3")
	h := sandbox.New(t, sandbox.Options{})
	addr := startListener(t, h)
	out := python(t, py, addr, rcptScript, "DOMAINS=added.example")
	mustContain(t, out, "added.example 553")
	rh := filepath.Join(h.Dir, "control", "rcpthosts")
	old, err := os.ReadFile(rh)
	if err != nil {
		t.Fatal(err)
	}
	writeControl(t, h, "rcpthosts", strings.TrimRight(string(old), "\n")+"\nadded.example\n")
	time.Sleep(DefaultConfigAge + 200*time.Millisecond)
	out = python(t, py, addr, rcptScript, "DOMAINS=added.example")
	mustContain(t, out, "added.example 250")
}

// benchControls is cachedControls with recipient validation on, as the sandbox has.
func benchControls(b *testing.B) control.Dir {
	ctl := cachedControls(b)
	putControl(b, ctl.Path, "validrcptdomains", "first.example\n")
	putControl(b, ctl.Path, "locals", "first.example\nlocalhost\n")
	putControl(b, ctl.Path, "virtualdomains", "virt.example:alice\n")
	putControl(b, ctl.Path, "badmailfrom", "spam@example.com\n")
	return ctl
}

// BenchmarkLoad is a session's configuration read from the control files, as
// qmail-smtpd under tcpserver does for each session.
func BenchmarkLoad(b *testing.B) {
	ctl := benchControls(b)
	lookup := func(string) (string, bool) { return "", false }
	b.ReportAllocs()
	for b.Loop() {
		_, done, err := Load(ctl, lookup)
		if err != nil {
			b.Fatal(err)
		}
		done()
	}
}

// BenchmarkConfigCacheLoad is BenchmarkLoad in listener mode.
func BenchmarkConfigCacheLoad(b *testing.B) {
	cc := &ConfigCache{Control: benchControls(b)}
	lookup := func(string) (string, bool) { return "", false }
	b.ReportAllocs()
	for b.Loop() {
		_, done, err := cc.Load(lookup)
		if err != nil {
			b.Fatal(err)
		}
		done()
	}
}

// Sessions that share a TLSConfig (the listener's) resume each other's TLS
// sessions: a returning client skips the full handshake.
func TestSharedTLSConfigResumes(t *testing.T) {
	st, ca := testStore(t)
	ctl := cachedControls(t)
	addr := serveRun(t, RunOptions{Control: ctl, Configs: &ConfigCache{Control: ctl},
		Certs: st, TLSConfig: st.Config(), ImplicitTLS: true})
	cache := tls.NewLRUClientSessionCache(4)
	for i, want := range []bool{false, true} {
		tc, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "mx.example.org", RootCAs: ca.Pool(), ClientSessionCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tc.Close() })
		c := &client{t: t, c: tc, br: bufio.NewReader(tc)}
		c.reply() // reading the greeting also takes in the TLS 1.3 session ticket
		c.cmd("EHLO c", "250")
		c.cmd("QUIT", "221")
		if got := tc.ConnectionState().DidResume; got != want {
			t.Errorf("session %d: resumed %v, want %v", i+1, got, want)
		}
		tc.Close()
	}
}
