package smtpd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/spp"
	"github.com/notqmail/notqmail/src/testpeer"
)

func writePlugin(t *testing.T, dir, name, body string) {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "plugins"), 0755)
	if err := os.WriteFile(filepath.Join(dir, "plugins", name), []byte("#!/bin/sh\n"+body), 0755); err != nil {
		t.Fatal(err)
	}
}

// pluginConfig is testConfig with plugins from an smtpplugins text.
func pluginConfig(t *testing.T, q *memQueue, dir, conf string) *Config {
	cfg := testConfig(q)
	r := spp.Parse([]byte(conf))
	r.Dir = dir
	cfg.Plugins = func(st spp.Stage, set map[string]string, unset map[string]bool) spp.Verdict {
		return r.Run(st, []string{"TCPREMOTEIP=192.0.2.7", "PATH=" + os.Getenv("PATH")}, set, unset)
	}
	return cfg
}

func TestPluginsInSession(t *testing.T) {
	dir := t.TempDir()
	writePlugin(t, dir, "rblcheck", "echo 'HX-RBL: clean'\n")
	writePlugin(t, dir, "helo", `case "$SMTPHELOHOST" in *.invalid) echo "E550 bad HELO $SMTPHELOHOST";; esac`+"\n")
	writePlugin(t, dir, "from", `[ "$SMTPMAILFROM" = "vip@x.example" ] && { echo O; exit 0; }; echo "Sfrom_seen=yes"`+"\n")
	writePlugin(t, dir, "rcptcheck", `case "$SMTPRCPTTO" in
  spam@*) echo "E550 5.1.1 $SMTPRCPTTO rejected by policy (count $SMTPRCPTCOUNT/$SMTPRCPTCOUNTALL hostsok $SMTPRCPTHOSTSOK from $from_seen)";;
  redirect@*) echo "Carchive@example.org"; echo "HX-Redirected: yes"; echo N;;
esac
`)
	writePlugin(t, dir, "greylist", `echo "E451 4.7.1 greylisted, try again later"`+"\n")
	conf := "[connection]\nplugins/rblcheck\n[helo]\nplugins/helo\n[mail]\nplugins/from\n[rcpt]\nplugins/rcptcheck\n"
	q := &memQueue{}
	cfg := pluginConfig(t, q, dir, conf)
	cfg.BadMailFrom = []string{"vip@x.example"}
	out := dialog(t, cfg, "EHLO bad.invalid\r\nEHLO good.example\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<ok@example.org>\r\nRCPT TO:<spam@example.org>\r\n"+
		"RCPT TO:<redirect@example.org>\r\nDATA\r\nbody\r\n.\r\nMAIL FROM:<vip@x.example>\r\nRCPT TO:<ok@example.org>\r\nQUIT\r\n")
	mustContain(t, out, "550 bad HELO bad.invalid\r\n",
		"550 5.1.1 spam@example.org rejected by policy (count 1/2 hostsok 1 from yes)\r\n",
		"250 2.0.0 ok 1795248309 qp 4242\r\n")
	// O from the MAIL plugin skipped badmailfrom for vip@
	if strings.Contains(out, "badmailfrom") {
		t.Errorf("O did not skip qmail's checks:\n%s", out)
	}
	qs := q.all()
	if len(qs) != 1 {
		t.Fatalf("queued %d", len(qs))
	}
	if strings.Join(qs[0].rcpts, ",") != "ok@example.org,archive@example.org" {
		t.Errorf("recipients %q", qs[0].rcpts)
	}
	mustContain(t, qs[0].data, "with SMTP; 21 Nov 2026 08:05:09 -0000\nX-RBL: clean\nX-Redirected: yes\nbody\n")

	// A DATA plugin greylists; a later error from a connection plugin hits RCPT.
	writePlugin(t, dir, "later", "echo 'LR550 5.7.1 your network is listed'\n")
	q = &memQueue{}
	out = dialog(t, pluginConfig(t, q, dir, "[connection]\nplugins/later\n[data]\nplugins/greylist\n"),
		"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@example.org>\r\nRSET\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
	mustContain(t, out, "550 5.7.1 your network is listed\r\n250 flushed\r\n250 ok\r\n250 ok\r\n451 4.7.1 greylisted, try again later\r\n")

	// R hangs up, a broken plugin is a temporary failure, S RELAYCLIENT lets the client relay.
	writePlugin(t, dir, "bye", "echo 'R421 go away'\n")
	out = dialog(t, pluginConfig(t, &memQueue{}, dir, "[connection]\nplugins/bye\n"), "NOOP\r\n")
	if out != "421 go away\r\n" {
		t.Errorf("R at connect: %q", out)
	}
	out = dialog(t, pluginConfig(t, &memQueue{}, dir, "[mail]\nplugins/nonexistent\n"), "MAIL FROM:<a@x.example>\r\n")
	mustContain(t, out, "451 qmail-spp failure: plugins/nonexistent: can't execute (#4.3.0)\r\n")
	writePlugin(t, dir, "popauth", "echo SRELAYCLIENT=\n")
	q = &memQueue{}
	out = dialog(t, pluginConfig(t, q, dir, "[mail]\nplugins/popauth\n"), "MAIL FROM:<a@x.example>\r\nRCPT TO:<u@far.example>\r\nDATA\r\n.\r\n")
	if len(q.all()) != 1 {
		t.Errorf("S RELAYCLIENT= did not allow relaying:\n%s", out)
	}
}

// TestTCPServerPluginRejects: an existing-style qmail-spp shell plugin, configured in
// the sandbox's control/smtpplugins, rejects a recipient with its own message under
// tcpserver, seen by swaks.
func TestTCPServerPluginRejects(t *testing.T) {
	sw := testpeer.Need(t, "swaks")
	h := sandbox.New(t, sandbox.Options{})
	writePlugin(t, h.Dir, "rcpt-blacklist", `[ "$SMTPRCPTTO" = "blocked@sandbox.example" ] && echo "E550 5.7.1 mailbox $SMTPRCPTTO is closed, ask $TCPREMOTEIP"
exit 0
`)
	os.Chown(filepath.Join(h.Dir, "plugins"), h.UID, h.GID)
	writeControl(t, h, "smtpplugins", "[rcpt]\nplugins/rcpt-blacklist\n")
	addr := startTCPServer(t, h)
	out, _ := swaks(t, sw, addr, "--from", "a@example.net", "--to", "blocked@sandbox.example")
	mustContain(t, out, "550 5.7.1 mailbox blocked@sandbox.example is closed, ask 127.0.0.1")
	out, err := swaks(t, sw, addr, "--from", "a@example.net", "--to", "alice@sandbox.example")
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	if n := len(queuedMessages(t, h)); n != 1 {
		t.Errorf("queued %d", n)
	}
}
