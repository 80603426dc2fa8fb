package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/ids"
	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/users"
)

// The root-mode test: the MTA in a qmail home owned by root, so that no program takes
// sandbox mode and every privilege step runs, with qmail's real users.
//
// What it does to the machine, besides a scratch directory under the temp directory
// that it removes: it creates qmail's groups (qmail, nofiles) and users (alias, qmaild,
// qmaill, qmailp, qmailq, qmailr, qmails) when they do not exist, exactly as the
// packages' pre-install script does (system accounts, homes /var/qmail and
// /var/qmail/alias as in reference §1.3, which are never created), and a recipient
// account rootRecipient whose home it points into each run's scratch directory. It
// leaves these accounts in place afterwards, which is meant for a CI machine; existing
// qmail users (a real installation's) are used as they are. It never touches
// /var/qmail: the alias user's deliveries in this test are routed into the scratch
// home through users/assign, as a site whose alias home lies elsewhere would do.

// rootRecipient is the real account mail is delivered to. It is not a qmail user; the
// test owns it and repoints its home at each run's scratch directory.
const rootRecipient = "notqmailtest"

const rootDomain = "root.example"

// rootLock serialises root-mode tests of concurrent `go test` runs on one machine:
// they share the accounts and rootRecipient's home.
func rootLock(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "notqmail-rootmode.lock"), os.O_RDWR|os.O_CREATE, 0600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

// runTool runs an account tool; exit 9 ("already exists") counts as success, so that
// a concurrent creator or an earlier run does no harm.
func runTool(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 9) {
		t.Fatalf("%s %q: %v: %s", name, args, err, out)
	}
}

func nologin() string {
	for _, p := range []string{"/usr/sbin/nologin", "/sbin/nologin"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "/bin/false"
}

// ensureQmailAccounts creates qmail's groups and users when missing, as the packages'
// pre-install script does.
func ensureQmailAccounts(t *testing.T) {
	t.Helper()
	for _, g := range ids.Groups {
		if _, err := user.LookupGroup(g); err != nil {
			runTool(t, "groupadd", "-r", g)
		}
	}
	for _, u := range ids.Users {
		if _, err := user.Lookup(u); err == nil {
			continue
		}
		group, home := ids.GroupNofiles, "/var/qmail"
		switch u {
		case ids.Alias:
			home = "/var/qmail/alias"
		case ids.Qmailq, ids.Qmailr, ids.Qmails:
			group = ids.GroupQmail
		}
		runTool(t, "useradd", "-r", "-M", "-g", group, "-d", home, "-s", nologin(), "-c", "qmail "+u, u)
	}
}

// account looks a user up, failing the test.
func account(t *testing.T, name string) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

func groupID(t *testing.T, name string) int {
	t.Helper()
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	return gid
}

// moduleRoot is the source tree's root, for go build.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD: %q %v", out, err)
	}
	return filepath.Dir(gomod)
}

func goBuild(t *testing.T, root, out, pkg string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", append(append([]string{"build", "-o", out}, args...), pkg)...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// setOwnerMode chowns and then chmods (chown clears set-id bits).
func setOwnerMode(t *testing.T, p string, uid, gid int, mode fs.FileMode) {
	t.Helper()
	if err := os.Lchown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func mkdirOwned(t *testing.T, p string, uid, gid int, mode fs.FileMode) {
	t.Helper()
	if err := os.Mkdir(p, 0700); err != nil {
		t.Fatal(err)
	}
	setOwnerMode(t, p, uid, gid, mode)
}

func writeOwned(t *testing.T, p, content string, uid, gid int, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0600); err != nil {
		t.Fatal(err)
	}
	setOwnerMode(t, p, uid, gid, mode)
}

// checkNode checks a path's owner uid, mode (permission and set-id bits) and type.
func checkNode(t *testing.T, p string, uid int, mode fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Error(err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || fi.Mode() != mode {
		t.Errorf("%s: uid %d mode %v, want uid %d mode %v", p, st.Uid, fi.Mode(), uid, mode)
	}
}

// procIDs reads a process's uids, gids and supplementary groups from /proc.
func procIDs(pid int) (uid, gid, groups string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", "", "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.Join(strings.Fields(v), " ")
		switch k {
		case "Uid":
			uid = v
		case "Gid":
			gid = v
		case "Groups":
			groups = v
		}
	}
	return uid, gid, groups, nil
}

// four is a /proc status id line: real, effective, saved and filesystem id.
func four(id string) string { return id + " " + id + " " + id + " " + id }

func TestRootMode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("root mode needs root: it creates qmail's users and runs every privilege step (the sandbox tests cover the rest)")
	}
	began := time.Now()
	_, varQmailErr := os.Stat("/var/qmail")
	rootLock(t)
	ensureQmailAccounts(t)

	base, err := os.MkdirTemp("", "notqmail-root-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0755); err != nil { // the qmail users must traverse it
		t.Fatal(err)
	}
	for p := filepath.Dir(base); ; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0001 == 0 {
			t.Skipf("%s is not searchable by others, so qmail's users cannot reach a home under it", p)
		}
		if p == filepath.Dir(p) {
			break
		}
	}
	dir := filepath.Join(base, "qmail")
	rhome := filepath.Join(dir, "home", rootRecipient)

	// The recipient: a real account whose home is in this run's scratch directory.
	if _, err := user.Lookup(rootRecipient); err != nil {
		runTool(t, "useradd", "-M", "-U", "-d", rhome, "-s", nologin(), "-c", "notqmail root-mode test recipient", rootRecipient)
	} else {
		runTool(t, "usermod", "-d", rhome, rootRecipient)
	}

	qmailGID, nofilesGID := groupID(t, ids.GroupQmail), groupID(t, ids.GroupNofiles)
	uidAlias, gidAlias := account(t, ids.Alias)
	uidL, _ := account(t, ids.Qmaill)
	uidQ, _ := account(t, ids.Qmailq)
	uidR, _ := account(t, ids.Qmailr)
	uidS, _ := account(t, ids.Qmails)
	uidU, gidU := account(t, rootRecipient)
	// The unprivileged user who runs sendmail.
	sender := "nobody"
	uidN, gidN := 65534, 65534
	if _, err := user.Lookup(sender); err == nil {
		uidN, gidN = account(t, sender)
	}

	// The home, laid out and owned as hier.c installs it (reference §1.5).
	mkdirOwned(t, dir, 0, qmailGID, 0755)
	for _, d := range []string{"control", "users", "bin", "home"} {
		mkdirOwned(t, filepath.Join(dir, d), 0, qmailGID, 0755)
	}
	mkdirOwned(t, filepath.Join(dir, "alias"), uidAlias, qmailGID, 0755|fs.ModeSetgid)
	for _, d := range []string{"Maildir", "Maildir/new", "Maildir/cur", "Maildir/tmp"} {
		mkdirOwned(t, filepath.Join(dir, "alias", d), uidAlias, gidAlias, 0700)
	}
	for _, n := range []string{"postmaster", "mailer-daemon"} {
		writeOwned(t, filepath.Join(dir, "alias", ".qmail-"+n), "./Maildir/\n", 0, 0, 0644)
	}
	mkdirOwned(t, rhome, uidU, gidU, 0755)
	for _, d := range []string{"Maildir", "Maildir/new", "Maildir/cur", "Maildir/tmp"} {
		mkdirOwned(t, filepath.Join(rhome, d), uidU, gidU, 0700)
	}
	// A forward: qmail-local, as the recipient, queues the copy through qmail-queue.
	writeOwned(t, filepath.Join(rhome, ".qmail-fwd"), "&"+rootRecipient+"@"+rootDomain+"\n", uidU, gidU, 0644)
	writeOwned(t, filepath.Join(rhome, ".qmail-ids"), "|echo \"$(id -u) $(id -g) $(id -G)\" >> \"$HOME/ids\"\n", uidU, gidU, 0644)
	for name, v := range map[string]string{
		"me": rootDomain, "locals": rootDomain, "rcpthosts": rootDomain,
		"concurrencylocal": "0", "concurrencyremote": "0", // hold everything at first
	} {
		writeOwned(t, filepath.Join(dir, "control", name), v+"\n", 0, 0, 0644)
	}
	// The alias user's addresses, into the scratch alias directory (its passwd home is
	// /var/qmail/alias); everything else goes through qmail-getpw.
	var assign strings.Builder
	for _, n := range []string{"postmaster", "mailer-daemon"} {
		fmt.Fprintf(&assign, "=%s:%s:%d:%d:%s:-:%s:\n", n, ids.Alias, uidAlias, gidAlias, filepath.Join(dir, "alias"), n)
	}
	assign.WriteString(".\n")
	writeOwned(t, filepath.Join(dir, "users", "assign"), assign.String(), 0, 0, 0644)
	if err := users.NewU(filepath.Join(dir, "users", "assign"), filepath.Join(dir, "users", "cdb")); err != nil {
		t.Fatal(err)
	}
	// A fake qmail-remote (QMAILREMOTE) that reports the ids it runs with.
	fakeRemote := filepath.Join(base, "fake-remote")
	writeOwned(t, fakeRemote, "#!/bin/sh\ncat >/dev/null\nprintf 'r\\000Kremote ran as %s %s\\000' \"$(id -u)\" \"$(id -g)\"\n", 0, 0, 0755)

	// The binaries: notqmail root:qmail 0755 with a link per program, and qmail-queue
	// qmailq:qmail 04711, built with this home compiled in since a setuid qmail-queue
	// ignores QMAILHOME.
	bin := filepath.Join(dir, "bin")
	root := moduleRoot(t)
	if pre := os.Getenv(sandbox.BinEnv); pre != "" {
		b, err := os.ReadFile(filepath.Join(pre, "notqmail"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, "notqmail"), b, 0755); err != nil {
			t.Fatal(err)
		}
	} else {
		goBuild(t, root, filepath.Join(bin, "notqmail"), "./src/cmd/notqmail")
	}
	goBuild(t, root, filepath.Join(bin, "qmail-queue"), "./src/cmd/qmail-queue",
		"-ldflags", "-X github.com/notqmail/notqmail/src/home.Default="+dir)
	setOwnerMode(t, filepath.Join(bin, "notqmail"), 0, qmailGID, 0755)
	setOwnerMode(t, filepath.Join(bin, "qmail-queue"), uidQ, qmailGID, 0711|fs.ModeSetuid)
	list, err := exec.Command(filepath.Join(bin, "notqmail"), "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range strings.Fields(string(list)) {
		if n != "notqmail" && n != "qmail-queue" && !strings.Contains(n, "/") {
			if err := os.Symlink("notqmail", filepath.Join(bin, n)); err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Logf("built the binaries after %v", time.Since(began))
	owners, err := queue.LookupOwners()
	if err != nil {
		t.Fatal(err)
	}
	if err := queue.Create(filepath.Join(dir, "queue"), queue.DefaultSplit, owners); err != nil {
		t.Fatal(err)
	}
	// h gives the sandbox helpers (Command, Env, Queue, Messages, StartMTA) this home;
	// it is owned by root, so no program takes sandbox mode.
	h := &sandbox.Home{Dir: dir, Bin: bin, Domain: rootDomain}
	q := h.Queue()
	rcpt := rootRecipient + "@" + rootDomain

	// Queue four messages with no qmail-send running: as an unprivileged user through
	// sendmail, and as root through qmail-inject.
	type injection struct {
		token, prog string
		args        []string
		asUser      bool
		uid         int
	}
	injections := []injection{
		{"root-mode-sendmail", "sendmail", []string{"-f", rcpt, rcpt}, true, uidN},
		{"root-mode-inject", "qmail-inject", []string{"-f", rcpt, rcpt, rootRecipient + "-ids@" + rootDomain, rootRecipient + "-fwd@" + rootDomain, "someone@far.example"}, false, 0},
		{"root-mode-bounce", "sendmail", []string{"-f", rcpt, rootRecipient + "-nobox@" + rootDomain}, true, uidN},
		{"root-mode-double", "qmail-inject", []string{"-f", rootRecipient + "-nobox@" + rootDomain, rootRecipient + "-nobox2@" + rootDomain}, false, 0},
	}
	for _, in := range injections {
		cmd := h.Command(in.prog, in.args...)
		cmd.Dir = "/"
		if in.asUser {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uidN), Gid: uint32(gidN), Groups: []uint32{}}}
		}
		cmd.Stdin = strings.NewReader("Subject: " + in.token + "\n\nbody of " + in.token + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %q: %v: %s", in.prog, in.args, err, out)
		}
	}

	// Queued and not yet seen by qmail-send: todo/ and intd/ are one file, and mess/ is
	// the message, all qmailq 0644 (umask 033); the envelope records the caller's uid.
	todo, err := q.Todo()
	if err != nil || len(todo) != len(injections) {
		t.Fatalf("todo/ holds %v (%v), want %d messages", todo, err, len(injections))
	}
	byToken := map[string]uint64{}
	for _, id := range todo {
		for _, p := range []string{q.Path("todo", id), q.Path("intd", id), q.Path("mess", id)} {
			checkNode(t, p, uidQ, 0644)
		}
		env, err := q.ReadEnvelope(id)
		if err != nil {
			t.Fatal(err)
		}
		mess, err := os.ReadFile(q.Path("mess", id))
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range injections {
			if bytes.Contains(mess, []byte("Subject: "+in.token+"\n")) {
				byToken[in.token] = id
				want := fmt.Sprintf("invoked by uid %d); ", in.uid)
				if env.UID != in.uid || !strings.HasPrefix(string(mess), "Received: (qmail ") || !strings.Contains(strings.SplitN(string(mess), "\n", 2)[0], want) {
					t.Errorf("%s: envelope uid %d, message %q; want uid %d and %q", in.token, env.UID, mess, in.uid, want)
				}
			}
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(q.Dir, "pid")); len(ents) != 0 {
		t.Errorf("pid/ not empty: %v", ents)
	}

	// First run: deliveries held (concurrency 0), so the preprocessed messages stay.
	log := &sandbox.Log{}
	start := func(env ...string) *sandbox.MTA {
		t.Helper()
		return h.StartMTA(t, sandbox.MTAOptions{Args: []string{"./Maildir/", "cat"}, Env: env, Dir: "/", Log: log, Guard: guard})
	}
	stop := func(m *sandbox.MTA) {
		t.Helper()
		if err := m.Stop(); err != nil {
			t.Errorf("qmail-start after SIGTERM: %v\nlog:\n%s", err, log.String())
		}
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }

	t.Logf("queued after %v", time.Since(began))
	m := start()
	m.WaitFor("the preprocessing", func() bool {
		ids, _ := q.Todo()
		if len(ids) > 0 || !strings.Contains(log.String(), "status: local 0/0 remote 0/0") {
			return false
		}
		for _, id := range byToken {
			if !exists(q.Path("info", id)) {
				return false
			}
		}
		return exists(q.Path("remote", byToken["root-mode-inject"]))
	})
	// The daemons' ids, as qmail-start hands them out (reference §1.2).
	kids := m.Children()
	qg := strconv.Itoa(qmailGID)
	ng := strconv.Itoa(nofilesGID)
	for _, want := range []struct {
		name   string
		uid    int
		gid    string
		groups string // "" to skip
	}{
		{"qmail-send", uidS, qg, qg},
		{"qmail-lspawn", 0, qg, qg},
		{"qmail-rspawn", uidR, qg, ""}, // qmail, then whatever else qmailr is in
		{"qmail-clean", uidQ, qg, qg},
		{"qmail-queued", uidQ, qg, qg},
		{"cat", uidL, ng, ng}, // the logger
	} {
		pid, ok := kids[want.name]
		if !ok {
			t.Errorf("no %s among qmail-start's children %v", want.name, kids)
			continue
		}
		u, g, gs, err := procIDs(pid)
		wu, wg := four(strconv.Itoa(want.uid)), four(want.gid)
		if err != nil || u != wu || g != wg || (want.groups != "" && gs != want.groups) ||
			(want.groups == "" && !strings.HasPrefix(gs, qg)) {
			t.Errorf("%s runs as uid %q gid %q groups %q (%v), want uid %q gid %q groups %q", want.name, u, g, gs, err, wu, wg, want.groups)
		}
	}
	// qmail-queued's socket, in run/, which qmail-start made qmailq's.
	m.WaitFor("qmail-queued's socket", func() bool {
		fi, err := os.Stat(filepath.Join(h.Dir, "run", "qmail-queue"))
		return err == nil && fi.Mode().Type() == os.ModeSocket
	})
	if fi, err := os.Stat(filepath.Join(h.Dir, "run")); err != nil || fi.Mode().Perm() != 0755 || fi.Sys().(*syscall.Stat_t).Uid != uint32(uidQ) {
		t.Errorf("run/ is not qmailq's with mode 0755 (%v)", err)
	}
	if u, g, _, err := procIDs(m.PID()); err != nil || u != "0 0 0 0" || g != four(qg) {
		t.Errorf("qmail-start runs as uid %q gid %q (%v), want root with gid qmail", u, g, err)
	}
	// Held in the queue: mess/ still qmailq's, info/ local/ remote/ qmail-send's own
	// (qmails 0600 under qmail-start's umask 077); todo/ and intd/ cleaned by qmail-clean.
	for tok, id := range byToken {
		checkNode(t, q.Path("mess", id), uidQ, 0644)
		checkNode(t, q.Path("info", id), uidS, 0600)
		checkNode(t, q.Path("local", id), uidS, 0600)
		if tok == "root-mode-inject" {
			checkNode(t, q.Path("remote", id), uidS, 0600)
		}
		for _, sub := range []string{"todo", "intd"} {
			if exists(q.Path(sub, id)) {
				t.Errorf("%s still exists after preprocessing", q.Path(sub, id))
			}
		}
	}
	// The queue's own nodes (reference §2.1).
	for _, n := range []struct {
		rel  string
		uid  int
		mode fs.FileMode
	}{
		{"", uidQ, fs.ModeDir | 0750}, {"pid", uidQ, fs.ModeDir | 0700}, {"intd", uidQ, fs.ModeDir | 0700},
		{"todo", uidQ, fs.ModeDir | 0750}, {"mess/0", uidQ, fs.ModeDir | 0750}, {"info/0", uidS, fs.ModeDir | 0700},
		{"local/0", uidS, fs.ModeDir | 0700}, {"remote/0", uidS, fs.ModeDir | 0700}, {"bounce", uidS, fs.ModeDir | 0700},
		{"lock", uidQ, fs.ModeDir | 0750}, {"lock/tcpto", uidR, 0644}, {"lock/sendmutex", uidS, 0600},
		{"lock/trigger", uidS, fs.ModeNamedPipe | 0622},
	} {
		checkNode(t, filepath.Join(q.Dir, n.rel), n.uid, n.mode)
	}
	if n := countFiles(h.Maildir(rootRecipient)); n != 0 {
		t.Errorf("%d deliveries while concurrencylocal is 0", n)
	}
	stop(m)
	t.Logf("first run done after %v", time.Since(began))

	// Second run: deliveries allowed; remote ones through the fake qmail-remote.
	for _, c := range []string{"concurrencylocal", "concurrencyremote"} {
		os.Remove(filepath.Join(dir, "control", c))
	}
	m = start("QMAILREMOTE=" + fakeRemote)
	m.WaitFor("the deliveries, the bounce and the double bounce", func() bool {
		return countFiles(h.Maildir(rootRecipient)) >= 4 && countFiles(h.Maildir("alias")) >= 1 && h.QueueEmpty()
	})
	stop(m)
	t.Logf("second run done after %v", time.Since(began))

	// Every delivered file belongs to its recipient.
	msgs, err := h.Messages(rootRecipient)
	if err != nil {
		t.Fatal(err)
	}
	aliasMsgs, err := h.Messages("alias")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		checkNode(t, m.Path, uidU, 0600)
	}
	for _, m := range aliasMsgs {
		checkNode(t, m.Path, uidAlias, 0600)
	}
	var all []string
	for _, m := range msgs {
		all = append(all, string(m.Data))
	}
	joined := strings.Join(all, "\n----\n")
	if len(msgs) != 4 {
		t.Errorf("%d messages for %s, want the two deliveries, the forwarded copy and a bounce:\n%s", len(msgs), rootRecipient, joined)
	}
	for _, want := range []string{
		"Subject: root-mode-sendmail\n",
		fmt.Sprintf("invoked by uid %d); ", uidN),
		"Subject: root-mode-inject\n",
		"invoked by uid 0); ",
		// The forwarded copy, queued by qmail-local running as the recipient.
		fmt.Sprintf("invoked by uid %d); ", uidU),
		"Delivered-To: " + rootRecipient + "-fwd@" + rootDomain + "\n",
		// The bounce, queued by qmail-send as qmails.
		"invoked for bounce); ",
		"<" + rootRecipient + "-nobox@" + rootDomain + ">:\n",
		"Sorry, no mailbox here by that name. (#5.1.1)",
		"Subject: root-mode-bounce\n",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("%s's messages lack %q:\n%s", rootRecipient, want, joined)
		}
	}
	if len(aliasMsgs) != 1 {
		t.Fatalf("%d messages for the postmaster, want the double bounce", len(aliasMsgs))
	}
	d := string(aliasMsgs[0].Data)
	for _, want := range []string{
		"Delivered-To: postmaster@" + rootDomain + "\n",
		"invoked for bounce); ",
		"I tried to deliver a bounce message to this address, but the bounce bounced!",
		"<" + rootRecipient + "-nobox@" + rootDomain + ">:",
		"Subject: root-mode-double\n",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("double bounce lacks %q:\n%s", want, d)
		}
	}
	// qmail-local ran the program as the recipient, without supplementary groups.
	idsOut, err := os.ReadFile(filepath.Join(rhome, "ids"))
	if want := fmt.Sprintf("%d %d %d\n", uidU, gidU, gidU); err != nil || string(idsOut) != want {
		t.Errorf("the program delivery ran as %q (%v), want %q", idsOut, err, want)
	}
	// qmail-remote ran as qmailr with group qmail.
	if want := fmt.Sprintf("success: remote_ran_as_%d_%d\n", uidR, qmailGID); !strings.Contains(log.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, log.String())
	}
	// qmail-send's log names the callers' uids: the unprivileged sender, root, and
	// qmails for the bounces it queued itself.
	l := log.String()
	for _, want := range []string{
		fmt.Sprintf(" uid %d\n", uidN), " uid 0\n", fmt.Sprintf(" uid %d\n", uidS), "status: local 0/0 remote 0/0\n",
	} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
	if strings.Contains(l, "alert:") || strings.Contains(l, "warning:") {
		t.Errorf("log has alerts or warnings:\n%s", l)
	}
	if _, err := os.Stat("/var/qmail"); varQmailErr != nil && err == nil {
		t.Errorf("the test created /var/qmail")
	}
}
