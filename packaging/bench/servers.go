package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/notqmail/notqmail/src/sandbox"
)

// The recipient every local scenario delivers to, and the remote scenario's.
const (
	LocalDomain = "sandbox.example"
	LocalRcpt   = "alice@" + LocalDomain
	RemoteRcpt  = "sink@remote.example"
	Sender      = "bench@client.example"
)

// LocalConcurrency is how many local deliveries each MTA runs at once: notqmail's
// control/concurrencylocal and Postfix's virtual_destination_concurrency_limit, whose
// default (default_destination_concurrency_limit) is 20. Scenario 4 likewise gives
// both MTAs a remote concurrency of 20. qmail's default concurrencylocal is 10; left
// at that, notqmail would deliver with half of Postfix's concurrency.
const LocalConcurrency = 20

// server is one MTA instance under test, fresh for each measurement.
type server interface {
	Name() string
	// Start starts, with delivery, the delivery daemons and, with smtp, the SMTP
	// listener; every process runs in the instance's cgroup. prefix (perf record ...)
	// goes before each started program, {name} replaced by the program's name.
	Start(ctx context.Context, smtp, delivery bool, prefix []string) error
	Stop() error
	Addr() string
	NewDir() string // the Maildir new/ the local scenarios fill
	Queued() (int, error)
	// Sendmail is the argv and environment of the instance's sendmail for rcpt.
	Sendmail(rcpt string) ([]string, []string)
	Acct() *acct
	Daemon() string // the queue manager's process name, for its RSS
	Close() error   // stop and release; the files go with the run's work directory
}

// started is a program started through acct.wrap.
type started struct {
	name    string
	cmd     *exec.Cmd
	pidfile string
	done    chan struct{}
	hold    *os.File // the write end of the program's stdin pipe, if any
}

func startProg(a *acct, dir, name string, prefix []string, env []string, args ...string) (*started, error) {
	return startProgIn(a, dir, name, prefix, env, false, args...)
}

// startProgIn is startProg, with a pipe on the program's standard input held open
// until stop when pipe is set (qmail-queued runs until its end of file).
func startProgIn(a *acct, dir, name string, prefix []string, env []string, pipe bool, args ...string) (*started, error) {
	pidfile := filepath.Join(dir, "pid."+name)
	os.Remove(pidfile)
	var argv []string
	for _, x := range prefix {
		argv = append(argv, strings.ReplaceAll(x, "{name}", name))
	}
	argv = append(argv, a.wrap(pidfile, args...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	logf, err := os.OpenFile(filepath.Join(dir, "log."+name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	var hold *os.File
	if pipe {
		r, w, err := os.Pipe()
		if err != nil {
			logf.Close()
			return nil, err
		}
		defer r.Close()
		cmd.Stdin, hold = r, w
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		if hold != nil {
			hold.Close()
		}
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &started{name: name, cmd: cmd, pidfile: pidfile, done: make(chan struct{}), hold: hold}
	go func() {
		cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// pid is the program's own pid (the wrapper exec'ed it), which differs from the
// started process when a prefix such as perf runs it.
func (p *started) pid() int {
	for i := 0; i < 200; i++ {
		if b, err := os.ReadFile(p.pidfile); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				return n
			}
		}
		select {
		case <-p.done:
			return 0
		case <-time.After(10 * time.Millisecond):
		}
	}
	return 0
}

func (p *started) stop(sig syscall.Signal) error {
	if p.hold != nil {
		p.hold.Close()
	}
	if pid := p.pid(); pid > 0 {
		syscall.Kill(pid, sig)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(60 * time.Second):
		if pid := p.pid(); pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s ignored %v and was killed", p.name, sig)
	}
}

func waitListening(ctx context.Context, addr string, p *started) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(filepath.Join(p.cmd.Dir, "log."+p.name))
			return fmt.Errorf("%s exited before listening on %s:\n%s", p.name, addr, b)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after a minute", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countFiles(dir string) (int, error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	return len(names), err
}

func countTree(dirs ...string) (int, error) {
	n := 0
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if e.Type().IsRegular() {
				n++
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

// --- notqmail ---

type notqmail struct {
	h         *sandbox.Home
	parent    string
	port      int
	tcpserver bool
	a         *acct
	procs     []*started
}

type nqOptions struct {
	Port              int
	TCPServer         bool
	ConcurrencyRemote int
	SinkPort          int // smtproutes for remote.example
}

func newNotqmail(base, binDir, tag string, o nqOptions) (*notqmail, error) {
	parent, err := os.MkdirTemp(base, "notqmail-")
	if err != nil {
		return nil, err
	}
	os.Chmod(parent, 0o755)
	h, err := sandbox.Create(filepath.Join(parent, "home"), sandbox.Options{Domain: LocalDomain, BinDir: binDir})
	if err != nil {
		os.RemoveAll(parent)
		return nil, err
	}
	ctl := map[string]string{"concurrencylocal": strconv.Itoa(LocalConcurrency)}
	if o.ConcurrencyRemote > 0 {
		ctl["concurrencyremote"] = strconv.Itoa(o.ConcurrencyRemote)
	}
	if o.SinkPort > 0 {
		ctl["smtproutes"] = fmt.Sprintf("remote.example:127.0.0.1:%d", o.SinkPort)
		ctl["rcpthosts"] = LocalDomain + "\nremote.example"
	}
	for k, v := range ctl {
		if err := os.WriteFile(filepath.Join(h.Dir, "control", k), []byte(v+"\n"), 0o644); err != nil {
			return nil, err
		}
	}
	return &notqmail{h: h, parent: parent, port: o.Port, tcpserver: o.TCPServer, a: newAcct(tag)}, nil
}

func (n *notqmail) Name() string {
	if n.tcpserver {
		return "notqmail (tcpserver)"
	}
	return "notqmail"
}
func (n *notqmail) Acct() *acct    { return n.a }
func (n *notqmail) Daemon() string { return "qmail-send" }
func (n *notqmail) Addr() string   { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }
func (n *notqmail) NewDir() string { return filepath.Join(n.h.Maildir("alice"), "new") }
func (n *notqmail) Queued() (int, error) {
	return countTree(filepath.Join(n.h.Dir, "queue", "mess"))
}
func (n *notqmail) Sendmail(rcpt string) ([]string, []string) {
	return []string{filepath.Join(n.h.Bin, "sendmail"), "-f", Sender, rcpt}, n.h.Env()
}

func (n *notqmail) Start(ctx context.Context, smtp, delivery bool, prefix []string) error {
	if delivery {
		p, err := startProg(n.a, n.h.Dir, "qmail-start", prefix, n.h.Env(), filepath.Join(n.h.Bin, "qmail-start"), "./Maildir/")
		if err != nil {
			return err
		}
		n.procs = append(n.procs, p)
	}
	if !smtp {
		return nil
	}
	if !delivery {
		// Queueing a held backlog (not measured): qmail-queued, which qmail-start
		// would run, saves an exec of qmail-queue per message.
		p, err := startProgIn(n.a, n.h.Dir, "qmail-queued", prefix, n.h.Env(), true, filepath.Join(n.h.Bin, "qmail-queued"))
		if err != nil {
			return err
		}
		n.procs = append(n.procs, p)
	}
	args := []string{filepath.Join(n.h.Bin, "qmail-smtpd"), "-l", n.Addr(), "-c", "200", "-i", "200"}
	if n.tcpserver {
		args = []string{"tcpserver", "-c", "200", "-R", "-H", "-l", "0"}
		if os.Geteuid() == 0 {
			// As a real site runs it (tcpserver -u qmaild): qmail-smtpd starts
			// unprivileged instead of dropping root itself on every connection.
			args = append(args, "-u", strconv.Itoa(n.h.UID), "-g", strconv.Itoa(n.h.GID))
		}
		args = append(args, "127.0.0.1", strconv.Itoa(n.port), filepath.Join(n.h.Bin, "qmail-smtpd"))
	}
	p, err := startProg(n.a, n.h.Dir, "qmail-smtpd", prefix, n.h.Env(), args...)
	if err != nil {
		n.Stop()
		return err
	}
	n.procs = append(n.procs, p)
	if err := waitListening(ctx, n.Addr(), p); err != nil {
		n.Stop()
		return err
	}
	return nil
}

func (n *notqmail) Stop() error {
	var errs []error
	for i := len(n.procs) - 1; i >= 0; i-- {
		errs = append(errs, n.procs[i].stop(syscall.SIGTERM))
	}
	n.procs = nil
	return errors.Join(errs...)
}

// Close stops the instance and releases its cgroup. Its files stay until the run's
// work directory is removed at the end: removing thousands of files between
// measurements would make the next instance's file creates slower (ext4 without a
// journal scans recently freed inodes on every create), whichever MTA comes next.
func (n *notqmail) Close() error {
	err := n.Stop()
	n.a.remove()
	return err
}

// --- Postfix ---

// PostfixDaemonDir is where Debian installs master and the other daemons.
var PostfixDaemonDir = "/usr/lib/postfix/sbin"

type postfix struct {
	dir   string
	port  int
	a     *acct
	procs []*started
}

type pfOptions struct {
	Port     int
	SinkPort int
	// ConcurrencyRemote is smtp_destination_concurrency_limit.
	ConcurrencyRemote int
}

// masterCF is Debian's master.cf for the services a local and relay setup uses, with
// chroot off (a private instance has no populated chroot) and smtpd on a loopback
// port.
const masterCF = `%s inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
%sqmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

// mainCF configures a private instance: its own config, queue and data directories,
// loopback only, alice@sandbox.example a virtual Maildir owned by nobody, mail for
// other domains relayed to smtp-sink. Everything else, fsync included, is Postfix's
// compiled-in default as Debian builds it.
func mainCF(dir string, o pfOptions) string {
	return fmt.Sprintf(`compatibility_level = 3.6
config_directory = %[1]s/etc
queue_directory = %[1]s/queue
data_directory = %[1]s/data
maillog_file_prefixes = %[1]s
maillog_file = %[1]s/postfix.log
mail_owner = postfix
setgid_group = postdrop
myhostname = bench-postfix.example
mydomain = bench-postfix.example
mydestination =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtputf8_enable = no
biff = no
virtual_mailbox_domains = %[2]s
virtual_mailbox_base = %[1]s/vmail
virtual_mailbox_maps = texthash:%[1]s/etc/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
relayhost = [127.0.0.1]:%[3]d
smtp_destination_concurrency_limit = %[4]d
virtual_destination_concurrency_limit = %[5]d
`, dir, LocalDomain, o.SinkPort, o.ConcurrencyRemote, LocalConcurrency)
}

func newPostfix(base, tag string, o pfOptions) (*postfix, error) {
	if _, err := exec.LookPath("postfix"); err != nil {
		return nil, errors.New("postfix is not installed")
	}
	if o.ConcurrencyRemote == 0 {
		o.ConcurrencyRemote = 20
	}
	if o.SinkPort == 0 {
		o.SinkPort = 9 // discard: never used by the local scenarios
	}
	dir, err := os.MkdirTemp(base, "postfix-")
	if err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o755)
	for _, d := range []string{"etc", "queue", "data", "vmail/alice/Maildir/new", "vmail/alice/Maildir/cur", "vmail/alice/Maildir/tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	files := map[string]string{
		"etc/main.cf":   mainCF(dir, o),
		"etc/vmailbox":  LocalRcpt + " alice/Maildir/\n",
		"etc/master.cf": fmt.Sprintf(masterCF, net.JoinHostPort("127.0.0.1", strconv.Itoa(o.Port)), ""),
	}
	for f, s := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o644); err != nil {
			return nil, err
		}
	}
	if os.Geteuid() == 0 {
		if err := chownR(filepath.Join(dir, "vmail"), 65534, 65534); err != nil {
			return nil, err
		}
		if pw, err := lookupIDs("postfix"); err == nil {
			os.Chown(filepath.Join(dir, "data"), pw[0], pw[1])
			os.Chmod(filepath.Join(dir, "data"), 0o700)
		}
	}
	// postfix check creates the queue directories with their owners and modes.
	if out, err := exec.Command("postfix", "-c", filepath.Join(dir, "etc"), "check").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("postfix check: %v: %s", err, out)
	}
	return &postfix{dir: dir, port: o.Port, a: newAcct(tag)}, nil
}

func lookupIDs(user string) ([2]int, error) {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return [2]int{}, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) > 3 && f[0] == user {
			u, _ := strconv.Atoi(f[2])
			g, _ := strconv.Atoi(f[3])
			return [2]int{u, g}, nil
		}
	}
	return [2]int{}, fmt.Errorf("no user %s", user)
}

func chownR(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

func (p *postfix) Name() string   { return "Postfix" }
func (p *postfix) Acct() *acct    { return p.a }
func (p *postfix) Daemon() string { return "qmgr" }
func (p *postfix) Addr() string   { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }
func (p *postfix) NewDir() string { return filepath.Join(p.dir, "vmail", "alice", "Maildir", "new") }
func (p *postfix) etc() string    { return filepath.Join(p.dir, "etc") }
func (p *postfix) Queued() (int, error) {
	q := filepath.Join(p.dir, "queue")
	return countTree(filepath.Join(q, "maildrop"), filepath.Join(q, "incoming"), filepath.Join(q, "active"), filepath.Join(q, "deferred"), filepath.Join(q, "hold"))
}
func (p *postfix) Sendmail(rcpt string) ([]string, []string) {
	return []string{"/usr/sbin/sendmail", "-C", p.etc(), "-f", Sender, rcpt}, os.Environ()
}

// Start runs master in the foreground (as postfix start would after its checks, which
// newPostfix ran once) and kicks pickup so mail dropped while it was stopped moves.
// Without delivery, master.cf lacks qmgr: smtpd and cleanup queue mail into
// incoming/ and nothing moves it on. smtpd always runs (master needs a service to
// show it is up).
func (p *postfix) Start(ctx context.Context, smtp, delivery bool, prefix []string) error {
	comment := ""
	if !delivery {
		comment = "#"
	}
	// Without qmgr no flow-control tokens come back, and smtpd would pause
	// in_flow_delay (1 s) before each message: queueing a held backlog (not
	// measured) would take hours. Measured runs keep Postfix's default.
	flow := "in_flow_delay=1s"
	if !delivery {
		flow = "in_flow_delay=0"
	}
	if out, err := exec.Command("postconf", "-c", p.etc(), "-e", flow).CombinedOutput(); err != nil {
		return fmt.Errorf("postconf %s: %v: %s", flow, err, out)
	}
	cf := fmt.Sprintf(masterCF, p.Addr(), comment)
	if err := os.WriteFile(filepath.Join(p.etc(), "master.cf"), []byte(cf), 0o644); err != nil {
		return err
	}
	s, err := startProg(p.a, p.dir, "master", prefix, os.Environ(), filepath.Join(PostfixDaemonDir, "master"), "-c", p.etc(), "-d")
	if err != nil {
		return err
	}
	p.procs = append(p.procs, s)
	if err := waitListening(ctx, p.Addr(), s); err != nil {
		p.Stop()
		return err
	}
	exec.Command("postkick", "-c", p.etc(), "public", "pickup", "W").Run()
	return nil
}

func (p *postfix) Stop() error {
	var errs []error
	for _, s := range p.procs {
		errs = append(errs, s.stop(syscall.SIGTERM))
	}
	p.procs = nil
	return errors.Join(errs...)
}

// Close stops the instance and releases its cgroup; see notqmail.Close for why its
// files stay until the end of the run.
func (p *postfix) Close() error {
	err := p.Stop()
	p.a.remove()
	return err
}
