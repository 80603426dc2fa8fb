package smtpd

import (
	"bufio"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/certs"
	"github.com/notqmail/notqmail/src/certs/testca"
)

// greetingOf runs one listener session with opt on a pipe, sends EHLO when the
// greeting is a 220, and returns every reply line up to the end of the EHLO reply
// (or the first line otherwise).
func greetingOf(t *testing.T, opt RunOptions, env map[string]string) []string {
	t.Helper()
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer server.Close()
		o := opt
		o.Env = Env{Over: env}
		o.ID = "test"
		Run(server, o)
	}()
	defer func() { client.Close(); <-done }()
	client.SetDeadline(time.Now().Add(time.Minute)) // a guard against a hang, not a timing
	br := bufio.NewReader(client)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("greeting: %v", err)
	}
	lines := []string{strings.TrimRight(line, "\r\n")}
	if !strings.HasPrefix(line, "220 ") {
		return lines
	}
	go client.Write([]byte("EHLO client.example\r\n"))
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("EHLO reply: %v", err)
		}
		lines = append(lines, strings.TrimRight(line, "\r\n"))
		if len(line) > 3 && line[3] == ' ' {
			return lines
		}
	}
}

// A listener's sessions share a reading of the plugins file as they share the
// control files: an edit is seen once MaxAge has passed.
func TestConfigCachePluginsShared(t *testing.T) {
	ctl := cachedControls(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "smtpplugins")
	putControl(t, dir, "smtpplugins", "[connection]\n:echo 'R554 5.7.1 go away'\n")
	var reads []string
	cc := &ConfigCache{Control: ctl, MaxAge: time.Hour, onSPPRead: func(p string) { reads = append(reads, p) }}
	opt := RunOptions{Control: ctl, Configs: cc, Home: dir}
	env := map[string]string{"TCPREMOTEIP": "127.0.0.1", "SPPCONFFILE": "smtpplugins", "PATH": os.Getenv("PATH")}
	if got := greetingOf(t, opt, env); got[0] != "554 5.7.1 go away" {
		t.Fatalf("plugin's reply: %q", got)
	}
	putControl(t, dir, "smtpplugins", "[connection]\n")
	if got := greetingOf(t, opt, env); got[0] != "554 5.7.1 go away" {
		t.Errorf("within MaxAge: %q", got)
	}
	if len(reads) != 1 || reads[0] != conf {
		t.Errorf("plugins files read: %q, want %q once", reads, conf)
	}
	cc.MaxAge = time.Nanosecond
	if got := greetingOf(t, opt, env); got[0] != "220 mx.example ESMTP" {
		t.Errorf("after MaxAge: %q", got)
	}
	if len(reads) != 2 {
		t.Errorf("plugins file read %d times, want 2", len(reads))
	}

	// NOSPP still turns them off, and a missing file means no plugins.
	putControl(t, dir, "smtpplugins", "[connection]\n:echo 'R554 5.7.1 go away'\n")
	env["NOSPP"] = "1"
	if got := greetingOf(t, opt, env); got[0] != "220 mx.example ESMTP" {
		t.Errorf("NOSPP: %q", got)
	}
	delete(env, "NOSPP")
	os.Remove(conf)
	if got := greetingOf(t, opt, env); got[0] != "220 mx.example ESMTP" {
		t.Errorf("no plugins file: %q", got)
	}
}

// The held plugins files stay bounded however many $SPPCONFFILE names there are.
func TestConfigCachePluginsBounded(t *testing.T) {
	dir := t.TempDir()
	cc := &ConfigCache{MaxAge: time.Hour}
	for i := range 3 * maxHeldPlugins {
		p := filepath.Join(dir, "p"+string(rune('a'+i%26))+string(rune('a'+i/26)))
		if r, err := cc.plugins(p); r != nil || err != nil {
			t.Fatalf("missing file: %v %v", r, err)
		}
		if len(cc.spp) > maxHeldPlugins {
			t.Fatalf("%d plugins files held", len(cc.spp))
		}
	}
}

// A listener that started without a certificate looks for one at most once per
// MaxAge, and shares what it found; a broken file is not kept.
func TestConfigCacheCertificate(t *testing.T) {
	ctl := cachedControls(t)
	cc := &ConfigCache{Control: ctl, MaxAge: time.Hour}
	opt := RunOptions{Control: ctl, Configs: cc, Home: t.TempDir()}
	env := map[string]string{"TCPREMOTEIP": "127.0.0.1", "NOSPP": "1"}
	offers := func() bool {
		for _, l := range greetingOf(t, opt, env) {
			if strings.HasSuffix(l, "STARTTLS") {
				return true
			}
		}
		return false
	}
	if offers() {
		t.Fatal("STARTTLS offered without a certificate")
	}
	ca := testca.New(t)
	testca.WriteFile(t, ctl.Path, "servercert.pem", ca.Valid(t, "mx.example"))
	if offers() {
		t.Error("a certificate seen within MaxAge of looking for one")
	}
	cc.MaxAge = time.Nanosecond
	if !offers() {
		t.Error("STARTTLS not offered once the certificate exists")
	}
	cc.MaxAge = time.Hour
	st1, err1 := cc.certs(nil)
	st2, err2 := cc.certs(nil)
	if err1 != nil || err2 != nil || st1 == nil || st1 != st2 {
		t.Errorf("store not shared within MaxAge: %p %v, %p %v", st1, err1, st2, err2)
	}

	cc.MaxAge = time.Nanosecond
	putControl(t, ctl.Path, "servercert.pem", "garbage\n")
	if _, err := cc.certs(nil); err == nil || errors.Is(err, certs.ErrNoCertificate) {
		t.Fatalf("broken certificate: %v", err)
	}
	cc.MaxAge = time.Hour
	testca.WriteFile(t, ctl.Path, "servercert.pem", ca.Valid(t, "mx.example"))
	if st, err := cc.certs(nil); err != nil || st == nil {
		t.Errorf("a broken certificate's reading was kept: %v", err)
	}
}
