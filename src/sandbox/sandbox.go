// Package sandbox creates complete qmail homes for integration tests and for the demo:
// QMAILHOME directories owned by an unprivileged user, so that every notqmail program
// run in them takes sandbox mode (see package home) and runs as that user.
//
// A home holds:
//
//	control/   me, locals, rcpthosts (Options.Domain), defaultdelivery (./Maildir/)
//	queue/     qmail's queue layout (queue.Create)
//	users/     assign mapping alice (and alice-ext) to home/alice, compiled to cdb
//	home/alice the Maildir user alice, with home/alice/Maildir/
//	alias/     mode 02755; .qmail-postmaster, -mailer-daemon and -root deliver to
//	           alias/Maildir/
//	bin/       notqmail and a link to it per program name, plus qmail-queue
//	run/       qmail-queued's socket, qmail-queue (made by qmail-start)
//
// The binaries in bin/ are hard links into a per-process build cache shared by every
// home: copy one before changing its mode or contents.
//
// Run as root, the home is owned by nobody (65534) and lives under a directory that
// nobody can traverse; the programs drop to that user themselves. Run as another
// user, the home is owned by that user.
package sandbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/queueclient"
	"github.com/notqmail/notqmail/src/users"
)

// Options shape a sandbox home. The zero value is the standard sandbox.
type Options struct {
	// Domain is control/me, locals and rcpthosts. Default "sandbox.example".
	Domain string
	// Split is the queue's split. Default queue.DefaultSplit.
	Split int
	// Users are the Maildir users to create. Default ["alice"].
	Users []string
	// BinDir holds prebuilt binaries (see Binaries) to install instead of building
	// them with the go tool. Default: $NOTQMAIL_SANDBOX_BIN if set (BinEnv).
	BinDir string
}

// Home is a sandbox qmail home.
type Home struct {
	Dir      string // QMAILHOME
	Bin      string // Dir/bin
	Domain   string
	UID, GID int // the owner every program runs as
}

// SandboxUser is the unprivileged user that owns a sandbox created by root.
const SandboxUser = "nobody"

// owner returns the ids a new home is owned by.
func owner() (uid, gid int, err error) {
	if os.Geteuid() != 0 {
		return os.Geteuid(), os.Getegid(), nil
	}
	u, err := user.Lookup(SandboxUser)
	if err != nil {
		return 65534, 65534, nil
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil || uid == 0 {
		return 0, 0, fmt.Errorf("sandbox: user %s has unusable ids %s:%s", SandboxUser, u.Uid, u.Gid)
	}
	return uid, gid, nil
}

// Create makes a sandbox home at dir, which must not exist or be empty. Binaries come
// from opt.BinDir or are built once per process.
func Create(dir string, opt Options) (*Home, error) {
	if opt.Domain == "" {
		opt.Domain = "sandbox.example"
	}
	if opt.Split == 0 {
		opt.Split = queue.DefaultSplit
	}
	if opt.Users == nil {
		opt.Users = []string{"alice"}
	}
	for _, u := range opt.Users {
		if !validUser(u) {
			return nil, fmt.Errorf("sandbox: bad user name %q", u)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	uid, gid, err := owner()
	if err != nil {
		return nil, err
	}
	h := &Home{Dir: abs, Bin: filepath.Join(abs, "bin"), Domain: opt.Domain, UID: uid, GID: gid}

	if err := os.MkdirAll(abs, 0755); err != nil {
		return nil, err
	}
	if ents, err := os.ReadDir(abs); err != nil {
		return nil, err
	} else if len(ents) > 0 {
		return nil, fmt.Errorf("sandbox: %s is not empty", abs)
	}
	if err := os.Chmod(abs, 0755); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if err := checkTraversable(abs); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"control", "users", "home", "bin", "run"} {
		if err := os.Mkdir(filepath.Join(abs, d), 0755); err != nil {
			return nil, err
		}
	}
	ctl := map[string]string{
		"me":              opt.Domain,
		"locals":          opt.Domain,
		"rcpthosts":       opt.Domain,
		"defaultdelivery": "./Maildir/",
	}
	for name, v := range ctl {
		if err := os.WriteFile(filepath.Join(abs, "control", name), []byte(v+"\n"), 0644); err != nil {
			return nil, err
		}
	}
	var assign strings.Builder
	for _, u := range opt.Users {
		hd := h.UserHome(u)
		if err := makeMaildirHome(hd); err != nil {
			return nil, err
		}
		// qmail-pw2u's pair: the user itself and its extensions user-ext.
		fmt.Fprintf(&assign, "=%s:%s:%d:%d:%s:::\n", u, u, uid, gid, hd)
		fmt.Fprintf(&assign, "+%s-:%s:%d:%d:%s:-::\n", u, u, uid, gid, hd)
	}
	assign.WriteString(".\n")
	if err := os.WriteFile(filepath.Join(abs, "users", "assign"), []byte(assign.String()), 0644); err != nil {
		return nil, err
	}
	if err := users.NewU(filepath.Join(abs, "users", "assign"), filepath.Join(abs, "users", "cdb")); err != nil {
		return nil, err
	}
	if err := makeAlias(filepath.Join(abs, "alias")); err != nil {
		return nil, err
	}
	if err := queue.Create(filepath.Join(abs, "queue"), opt.Split,
		queue.Owners{Qmailq: uid, Qmails: uid, Qmailr: uid, Qmail: gid}); err != nil {
		return nil, err
	}
	if err := h.installBin(opt.BinDir); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if err := chownTree(abs, h.Bin, uid, gid); err != nil {
			return nil, err
		}
	}
	return h, nil
}

func validUser(u string) bool {
	if u == "" || len(u) > 31 {
		return false
	}
	for _, c := range u {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// checkTraversable makes sure an unprivileged owner can reach dir: every parent must
// be searchable by others.
func checkTraversable(dir string) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0001 == 0 {
			return fmt.Errorf("sandbox: %s is not searchable by others, so the sandbox owner cannot reach %s", p, dir)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func makeMaildirHome(hd string) error {
	if err := os.Mkdir(hd, 0755); err != nil {
		return err
	}
	return makeMaildir(filepath.Join(hd, "Maildir"))
}

func makeMaildir(md string) error {
	for _, d := range []string{"", "cur", "new", "tmp"} {
		if err := os.Mkdir(filepath.Join(md, d), 0700); err != nil {
			return err
		}
	}
	return nil
}

func makeAlias(dir string) error {
	if err := os.Mkdir(dir, 0755); err != nil {
		return err
	}
	// setgid, as qmail installs it (02755); set by chmod since mkdir drops it.
	if err := os.Chmod(dir, 0755|fs.ModeSetgid); err != nil {
		return err
	}
	if err := makeMaildir(filepath.Join(dir, "Maildir")); err != nil {
		return err
	}
	for _, n := range []string{"postmaster", "mailer-daemon", "root"} {
		if err := os.WriteFile(filepath.Join(dir, ".qmail-"+n), []byte("./Maildir/\n"), 0644); err != nil {
			return err
		}
	}
	return nil
}

// BinEnv names a directory of prebuilt binaries used when Options.BinDir is empty, so
// a test run over many packages can build them once (mage test) instead of once per
// test process.
const BinEnv = "NOTQMAIL_SANDBOX_BIN"

func (h *Home) installBin(binDir string) error {
	if binDir == "" {
		binDir = os.Getenv(BinEnv)
	}
	if binDir == "" {
		var err error
		if binDir, err = builtBinaries(); err != nil {
			return err
		}
	}
	for _, b := range Binaries {
		if err := install(filepath.Join(binDir, b), filepath.Join(h.Bin, b)); err != nil {
			return fmt.Errorf("sandbox: installing %s: %w", b, err)
		}
	}
	names, err := programNames(filepath.Join(h.Bin, "notqmail"))
	if err != nil {
		return err
	}
	for _, n := range names {
		if n == "notqmail" || slices.Contains(Binaries, n) {
			continue
		}
		if err := os.Symlink("notqmail", filepath.Join(h.Bin, n)); err != nil {
			return err
		}
	}
	return nil
}

// chownTree gives everything under dir to the owner, except the files in bin (the
// binaries, root-owned as in qmail and possibly shared with the build cache).
func chownTree(dir, bin string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if filepath.Dir(p) == bin {
			return nil
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		// chown clears the set-gid bit on some systems; restore alias's 02755.
		if d.IsDir() && d.Name() == "alias" && filepath.Dir(p) == dir {
			return os.Chmod(p, 0755|fs.ModeSetgid)
		}
		return nil
	})
}

// Env is the environment for programs run in the home: the caller's environment
// without any QMAIL* variable, plus QMAILHOME and PATH with bin/ first.
func (h *Home) Env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "QMAIL") || strings.HasPrefix(kv, "PATH=") {
			continue
		}
		env = append(env, kv)
	}
	path := h.Bin
	if p := os.Getenv("PATH"); p != "" {
		path += ":" + p
	}
	return append(env, "QMAILHOME="+h.Dir, "PATH="+path)
}

// Command returns a command running prog from bin/ with args, with Env and the home
// as working directory.
func (h *Home) Command(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(h.Bin, prog), args...)
	cmd.Env = h.Env()
	cmd.Dir = h.Dir
	return cmd
}

// Queue returns the home's queue.
func (h *Home) Queue() queue.Queue { return queue.Open(filepath.Join(h.Dir, "queue")) }

// QueueEmpty reports whether no message is left in the home's queue: nothing in
// todo/ and no info/ file (qmail-send removes a message's info/ file last, after its
// deliveries).
func (h *Home) QueueEmpty() bool {
	q := h.Queue()
	if ids, err := q.Todo(); err != nil || len(ids) > 0 {
		return false
	}
	empty := true
	filepath.WalkDir(filepath.Join(q.Dir, "info"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			empty = false
		}
		return nil
	})
	return empty
}

// UserHome returns the home directory of a sandbox Maildir user.
func (h *Home) UserHome(user string) string { return filepath.Join(h.Dir, "home", user) }

// Maildir returns a user's Maildir; "alias" names alias/Maildir, where postmaster,
// mailer-daemon and root mail lands.
func (h *Home) Maildir(user string) string {
	if user == "alias" {
		return filepath.Join(h.Dir, "alias", "Maildir")
	}
	return filepath.Join(h.UserHome(user), "Maildir")
}

// Message is one delivered message.
type Message struct {
	Path string
	Data []byte
}

// Messages returns the messages delivered to a user's Maildir (new/ and cur/), in
// file name order (which is delivery time order for Maildir names).
func (h *Home) Messages(user string) ([]Message, error) {
	var msgs []Message
	for _, sub := range []string{"new", "cur"} {
		d := filepath.Join(h.Maildir(user), sub)
		ents, err := os.ReadDir(d)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !e.Type().IsRegular() {
				continue
			}
			p := filepath.Join(d, e.Name())
			b, err := os.ReadFile(p)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) { // moved from new/ to cur/ meanwhile
					continue
				}
				return nil, err
			}
			msgs = append(msgs, Message{Path: p, Data: b})
		}
	}
	sort.Slice(msgs, func(i, j int) bool { return filepath.Base(msgs[i].Path) < filepath.Base(msgs[j].Path) })
	return msgs, nil
}

// Remove deletes the home. Files the programs made read-only are made writable first.
func (h *Home) Remove() error {
	filepath.WalkDir(h.Dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0700)
		} else if err != nil && errors.Is(err, fs.ErrPermission) {
			os.Chmod(p, 0700)
		}
		return nil
	})
	return os.RemoveAll(h.Dir)
}

// QueueConfig is the queueclient configuration for queueing into this home.
func (h *Home) QueueConfig() queueclient.Config {
	return queueclient.Config{Home: h.Dir, Env: h.Env()}
}

// Submit queues a message in the home through its qmail-queue, as a program of the
// MTA would.
func (h *Home) Submit(msg io.Reader, sender string, rcpts []string) error {
	return h.QueueConfig().Submit(msg, sender, rcpts)
}
