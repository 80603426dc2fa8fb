package manifest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/ids"
	"github.com/notqmail/notqmail/src/testpeer"
)

var fullBuild = map[string]bool{"qmail-start": true, "qmail-smtpd": true, "sendmail": true, "mailq": true,
	"qmail-popup": true, "qmail-pop3d": true, "qmail-qmtpd": true, "qmail-qmqpd": true, "qmail-qmqpc": true}

// Every script of every package and format is valid sh and creates every account.
func TestScriptsParse(t *testing.T) {
	sh := testpeer.Need(t, "sh")
	for _, pkg := range Packages {
		for _, f := range Formats {
			scripts, err := Scripts(pkg.Name, f, fullBuild)
			if err != nil {
				t.Fatal(err)
			}
			for slot, s := range scripts {
				if out, err := exec.Command(sh, "-n", "-c", string(s)).CombinedOutput(); err != nil {
					t.Errorf("%s %s %s: sh -n: %v\n%s\n%s", pkg.Name, f, slot, err, out, s)
				}
				if !strings.HasPrefix(string(s), "#!/bin/sh\nset -e\n") {
					t.Errorf("%s %s %s does not start with #!/bin/sh and set -e", pkg.Name, f, slot)
				}
			}
			if pkg.Name != Core {
				continue
			}
			for _, u := range Accounts {
				if !strings.Contains(string(scripts[PreInstall]), " "+u.Name+"; echo user:"+u.Name) {
					t.Errorf("%s pre-install does not create %s:\n%s", f, u.Name, scripts[PreInstall])
				}
			}
		}
	}
	// Nothing to do means no script: the apk of a sub-package has none.
	if s, _ := Scripts("notqmail-pop3", APK, fullBuild); len(s) != 0 {
		t.Errorf("notqmail-pop3 apk scripts: %v", s)
	}
}

// fakeHost runs maintainer scripts against a directory standing in for /: the paths
// they touch are moved under it, and the account, systemd and alternatives tools, and
// the qmail-config and qmail-qfix they call, are shell functions that log their calls.
type fakeHost struct {
	t    *testing.T
	sh   string
	root string
	db   string // accounts: "user:NAME" and "group:NAME" lines
	log  string // tool calls, one a line

	qfixExit int // the exit status of the fake qmail-qfix
}

func newFakeHost(t *testing.T, systemd bool) *fakeHost {
	h := &fakeHost{t: t, sh: testpeer.Need(t, "sh"), root: t.TempDir()}
	h.db = filepath.Join(h.root, "accounts")
	h.log = filepath.Join(h.root, "calls")
	for _, d := range []string{"var/qmail/alias", "var/qmail/users", "etc", "usr/share/notqmail/etc"} {
		os.MkdirAll(filepath.Join(h.root, d), 0o755)
	}
	os.WriteFile(filepath.Join(h.root, "usr/share/notqmail/etc/defaultdelivery"), []byte("./Maildir/\n"), 0o644)
	if systemd {
		os.MkdirAll(filepath.Join(h.root, "run/systemd/system"), 0o755)
	}
	os.WriteFile(h.db, nil, 0o644)
	os.WriteFile(h.log, nil, 0o644)
	return h
}

func (h *fakeHost) path(p string) string { return filepath.Join(h.root, p) }

func (h *fakeHost) run(script []byte, args ...string) string {
	h.t.Helper()
	out, err := h.try(script, args...)
	if err != nil {
		h.t.Fatalf("script %v: %v\n%s", args, err, out)
	}
	return out
}

// try runs a script like run, returning its failure instead of failing the test.
func (h *fakeHost) try(script []byte, args ...string) (string, error) {
	h.t.Helper()
	body := string(script)
	for _, p := range []string{LibBin, "/var/lib/notqmail", QmailHome, EtcQmail, EtcDefaults, "/run/systemd/system"} {
		body = strings.ReplaceAll(body, p, h.root+p)
	}
	fakes := `
db=` + h.db + `; log=` + h.log + `
getent() { case $1 in passwd) k=user;; *) k=group;; esac; command grep -qx "$k:$2" "$db"; }
id() { command grep -qx "user:$2" "$db"; }
grep() { if [ "$3" = /etc/group ]; then command grep -qx "group:$(echo "$2" | sed 's/^^//;s/:$//')" "$db"; else command grep "$@"; fi; }
need_group() { command grep -qx "group:$1" "$db" || { echo "no group $1" >&2; exit 1; }; }
groupadd() { echo "group:$2" >> "$db"; }
addgroup() { echo "group:$2" >> "$db"; }
useradd() { for a; do last=$a; done; need_group "$4"; echo "user:$last" >> "$db"; }
adduser() { for a; do last=$a; done; need_group "$5"; echo "user:$last" >> "$db"; }
userdel() { sed -i "/^user:$1\$/d" "$db"; echo userdel "$1" >> "$log"; }
groupdel() { sed -i "/^group:$1\$/d" "$db"; echo groupdel "$1" >> "$log"; }
PATH=` + filepath.Join(h.root, "fakebin") + `:$PATH
`
	body = strings.Replace(body, "set -e\n", "set -e\n"+fakes, 1)
	// Tools whose names are not shell function names (dash) are logging scripts.
	fakebin := filepath.Join(h.root, "fakebin")
	os.MkdirAll(fakebin, 0o755)
	for _, p := range []string{"deb-systemd-helper", "deb-systemd-invoke", "systemctl", "alternatives"} {
		os.WriteFile(filepath.Join(fakebin, p), []byte("#!/bin/sh\necho "+p+" \"$@\" >> "+h.log+"\n"), 0o755)
	}
	// qmail-config and qmail-qfix are called by path: make them logging scripts.
	bin := filepath.Join(h.root, LibBin)
	os.MkdirAll(bin, 0o755)
	for _, p := range []string{"qmail-config", "qmail-qfix"} {
		os.WriteFile(filepath.Join(bin, p), []byte("#!/bin/sh\necho "+p+" \"$@\" >> "+h.log+"\n"), 0o755)
	}
	os.WriteFile(filepath.Join(bin, "qmail-qfix"), []byte(fmt.Sprintf("#!/bin/sh\necho qmail-qfix \"$@\" >> %s\nexit %d\n", h.log, h.qfixExit)), 0o755)
	out, err := exec.Command(h.sh, append([]string{"-c", body, "script"}, args...)...).CombinedOutput()
	return string(out), err
}

// qmail-qfix's exit 1 (problems it may not fix now) is a warning; its errors fail the
// installation.
func TestConfigureToleratesQfixLeftovers(t *testing.T) {
	for _, c := range []struct {
		exit int
		ok   bool
	}{{0, true}, {1, true}, {100, false}, {111, false}} {
		h := newFakeHost(t, false)
		h.qfixExit = c.exit
		s := scriptsFor(t, Core, RPM)
		h.run(s[PreInstall])
		out, err := h.try(s[PostInstall], "1")
		if (err == nil) != c.ok {
			t.Errorf("qmail-qfix exit %d: postinstall error %v, want ok=%v\n%s", c.exit, err, c.ok, out)
		}
		if c.exit == 1 && !strings.Contains(out, "run qmail-qfix") {
			t.Errorf("qmail-qfix exit 1: no warning:\n%s", out)
		}
	}
}

func (h *fakeHost) calls() string {
	b, _ := os.ReadFile(h.log)
	os.WriteFile(h.log, nil, 0o644)
	return strings.ReplaceAll(string(b), h.root, "")
}

func (h *fakeHost) accounts() string { b, _ := os.ReadFile(h.db); return string(b) }

func scriptsFor(t *testing.T, pkg string, f Format) map[Script][]byte {
	s, err := Scripts(pkg, f, fullBuild)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wantCalls(t *testing.T, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("calls lack %q:\n%s", w, got)
		}
	}
}

// The Debian core package's life: install over a qmail-style /var/qmail, upgrade,
// remove, purge.
func TestDebLifecycleScripts(t *testing.T) {
	h := newFakeHost(t, true)
	s := scriptsFor(t, Core, Deb)
	// An earlier qmail: its own qmaild and nofiles, a control/ and a bin/.
	os.WriteFile(h.db, []byte("group:nofiles\nuser:qmaild\n"), 0o644)
	os.MkdirAll(h.path("var/qmail/control"), 0o755)
	os.WriteFile(h.path("var/qmail/control/me"), []byte("old.example\n"), 0o644)
	os.MkdirAll(h.path("var/qmail/bin"), 0o755)

	h.run(s[PreInstall], "install")
	if b, err := os.ReadFile(h.path("etc/qmail/me")); err != nil || string(b) != "old.example\n" {
		t.Errorf("control/ not moved to /etc/qmail: %q %v", b, err)
	}
	if _, err := os.Stat(h.path("var/qmail/bin.before-notqmail")); err != nil {
		t.Errorf("old bin/ not moved aside: %v", err)
	}
	for _, a := range append(append([]string{}, ids.Users...), ids.Groups...) {
		n := strings.Count(h.accounts(), ":"+a+"\n")
		if n != 1 {
			t.Errorf("%s appears %d times:\n%s", a, n, h.accounts())
		}
	}
	rec, _ := os.ReadFile(h.path(CreatedRecord))
	if strings.Contains(string(rec), "qmaild") || strings.Contains(string(rec), "nofiles") || !strings.Contains(string(rec), "user:alias\n") {
		t.Errorf("record of created accounts:\n%s", rec)
	}

	h.run(s[PostInstall], "configure")
	wantCalls(t, h.calls(),
		"qmail-config\n", "qmail-qfix -f /var/qmail/queue\n",
		"deb-systemd-helper enable qmail-send.service", "deb-systemd-helper enable qmail-smtpd.socket",
		"systemctl --system daemon-reload", "deb-systemd-invoke start qmail-send.service qmail-smtpd.socket")

	// Upgrade: no new accounts, nothing moved, running services restarted.
	before := h.accounts()
	h.run(s[PreInstall], "upgrade", "0.9-1")
	if h.accounts() != before {
		t.Errorf("upgrade changed the accounts:\n%s", h.accounts())
	}
	h.run(s[PostInstall], "configure", "0.9-1")
	c := h.calls()
	wantCalls(t, c, "qmail-qfix -f", "deb-systemd-invoke try-restart qmail-send.service qmail-smtpd.service")
	if strings.Contains(c, "deb-systemd-invoke start") {
		t.Errorf("upgrade starts services:\n%s", c)
	}

	// Remove keeps the queue and configuration; purge removes them and our accounts.
	os.MkdirAll(h.path("var/qmail/queue/mess/0"), 0o750)
	os.WriteFile(h.path("etc/qmail/rcpthosts"), []byte("x\n"), 0o644)
	os.WriteFile(h.path("etc/qmail/databytes"), []byte("1000000\n"), 0o644) // the site's own
	os.MkdirAll(h.path("var/qmail/users"), 0o755)
	os.WriteFile(h.path("var/qmail/users/assign"), []byte(".\n"), 0o644)
	os.WriteFile(h.path("var/qmail/alias/.qmail-root"), []byte("./Maildir/\n"), 0o644)
	os.MkdirAll(h.path("var/qmail/alias/Maildir/new"), 0o700)
	h.run(s[PreRemove], "remove")
	wantCalls(t, h.calls(), "deb-systemd-invoke stop qmail-send.service qmail-smtpd.socket qmail-smtpd.service")
	h.run(s[PostRemove], "remove")
	if _, err := os.Stat(h.path("var/qmail/queue/mess/0")); err != nil {
		t.Errorf("remove lost the queue: %v", err)
	}
	h.run(s[PostRemove], "purge")
	c = h.calls()
	wantCalls(t, c, "deb-systemd-helper purge qmail-send.service", "userdel alias", "groupdel qmail")
	for _, p := range []string{"var/qmail/queue", "etc/qmail", "var/qmail/users", "var/qmail/alias/.qmail-root", "var/qmail/alias/Maildir", CreatedRecord} {
		if _, err := os.Stat(h.path(p)); err == nil {
			t.Errorf("purge left %s", p)
		}
	}
	if _, err := os.Stat(h.path("etc/qmail/me")); err == nil {
		// me came from the earlier qmail, but purge removes the configuration it manages.
		t.Errorf("purge left /etc/qmail/me")
	}
	if got := h.accounts(); got != "group:nofiles\nuser:qmaild\n" {
		t.Errorf("after purge the accounts are\n%s\nwant the administrator's own qmaild and nofiles only", got)
	}
}

// A Maildir still holding mail survives a purge.
func TestDebPurgeKeepsAliasMail(t *testing.T) {
	h := newFakeHost(t, false)
	s := scriptsFor(t, Core, Deb)
	os.MkdirAll(h.path("var/qmail/alias/Maildir/new"), 0o700)
	os.WriteFile(h.path("var/qmail/alias/Maildir/new/1.2.host"), []byte("mail"), 0o600)
	h.run(s[PostRemove], "purge")
	if _, err := os.Stat(h.path("var/qmail/alias/Maildir/new/1.2.host")); err != nil {
		t.Errorf("purge removed mail: %v", err)
	}
	if c := h.calls(); strings.Contains(c, "systemctl") {
		t.Errorf("systemctl called without a running systemd:\n%s", c)
	}
}

func TestRPMScripts(t *testing.T) {
	h := newFakeHost(t, true)
	s := scriptsFor(t, Core, RPM)
	h.run(s[PreInstall], "1")
	if !strings.Contains(h.accounts(), "user:qmails\n") {
		t.Errorf("accounts:\n%s", h.accounts())
	}
	h.run(s[PostInstall], "1")
	wantCalls(t, h.calls(), "qmail-config\n", "qmail-qfix -f /var/qmail/queue",
		"alternatives --install /usr/sbin/sendmail mta /usr/lib/notqmail/bin/sendmail 30",
		"--slave /usr/bin/mailq mta-mailq /usr/lib/notqmail/bin/mailq",
		"systemctl --no-reload preset qmail-send.service")
	h.run(s[PostInstall], "2")
	if c := h.calls(); strings.Contains(c, "preset") || strings.Contains(c, " start") {
		t.Errorf("upgrade presets or starts units:\n%s", c)
	}
	h.run(s[PreRemove], "1")
	if c := h.calls(); strings.Contains(c, "alternatives --remove") || strings.Contains(c, "disable") {
		t.Errorf("upgrade's preun removes:\n%s", c)
	}
	h.run(s[PostRemove], "1")
	wantCalls(t, h.calls(), "systemctl try-restart qmail-send.service qmail-smtpd.service")
	h.run(s[PreRemove], "0")
	wantCalls(t, h.calls(), "systemctl --no-reload disable --now qmail-send.service", "alternatives --remove mta /usr/lib/notqmail/bin/sendmail")
}

func TestAPKScriptsNeverOverwriteConfiguration(t *testing.T) {
	h := newFakeHost(t, false)
	s := scriptsFor(t, Core, APK)
	h.run(s[PreInstall])
	if !strings.Contains(h.accounts(), "user:alias\n") {
		t.Errorf("accounts:\n%s", h.accounts())
	}
	os.MkdirAll(h.path("etc/qmail"), 0o755)
	h.run(s[PostInstall])
	if b, _ := os.ReadFile(h.path("etc/qmail/defaultdelivery")); string(b) != "./Maildir/\n" {
		t.Errorf("defaultdelivery not installed: %q", b)
	}
	wantCalls(t, h.calls(), "qmail-config\n", "qmail-qfix -f /var/qmail/queue")
	os.WriteFile(h.path("etc/qmail/defaultdelivery"), []byte("./Mailbox\n"), 0o644)
	h.run(s[PreUpgrade])
	h.run(s[PostUpgrade])
	if b, _ := os.ReadFile(h.path("etc/qmail/defaultdelivery")); string(b) != "./Mailbox\n" {
		t.Errorf("upgrade overwrote defaultdelivery: %q", b)
	}
	wantCalls(t, h.calls(), "qmail-qfix -f /var/qmail/queue")
}

// The sub-packages only manage their units; QMQP (which relays for any client it
// lets in) and POP3 (which needs a checkpassword first) are not enabled.
func TestSubpackageUnits(t *testing.T) {
	h := newFakeHost(t, true)
	h.run(scriptsFor(t, "notqmail-qmtp", Deb)[PostInstall], "configure")
	c := h.calls()
	wantCalls(t, c, "deb-systemd-helper enable qmail-qmtpd.socket", "deb-systemd-invoke start qmail-qmtpd.socket")
	if strings.Contains(c, "enable qmail-qmqpd") || strings.Contains(c, "qmail-config") {
		t.Errorf("qmtp postinst:\n%s", c)
	}
	h.run(scriptsFor(t, "notqmail-pop3", Deb)[PostInstall], "configure")
	if c := h.calls(); strings.Contains(c, "enable") || strings.Contains(c, "start") {
		t.Errorf("pop3 postinst enables or starts:\n%s", c)
	}
}
