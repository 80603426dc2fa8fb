package matrix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/notqmail/notqmail/packaging/chroot"
)

// Status of a cell.
type Status string

// The statuses a cell can have.
const (
	Pass   Status = "pass"
	Fail   Status = "fail"
	NotRun Status = "not-run"
)

// Cell is one step of one row, as it ran.
type Cell struct {
	Step     string  `json:"step"`
	Status   Status  `json:"status"`
	Reason   string  `json:"reason,omitempty"`   // why it failed or did not run
	Seconds  float64 `json:"seconds,omitempty"`  // how long it took
	Log      string  `json:"log,omitempty"`      // the log file, relative to the tree
	LogTail  string  `json:"log_tail,omitempty"` // the end of the log of a failed cell
	Detailed string  `json:"-"`
}

// Result is one row's run.
type Result struct {
	Row             Row     `json:"row"`
	Version         string  `json:"version,omitempty"`
	PreviousVersion string  `json:"previous_version,omitempty"`
	Date            string  `json:"date,omitempty"` // RFC 3339, UTC
	Seconds         float64 `json:"seconds,omitempty"`
	RootCached      bool    `json:"root_cached,omitempty"` // the root came from the cache
	Cells           []Cell  `json:"cells"`
}

// Packages are the files a row installs: for each architecture and format, the build
// under test and the previous build (for upgrade).
type Packages struct {
	Version, PreviousVersion string
	Current, Previous        map[string]string // "amd64/deb" -> file
	PreviousWhy              string            // why there is no previous build, when there is none
}

func pkgKey(arch, format string) string { return arch + "/" + format }

// Runner runs rows.
type Runner struct {
	Tree     string       // the source tree (for building the kit's client)
	Work     string       // scratch: kit binaries, logs (roots unpack under Cache.UnpackDir)
	Cache    chroot.Cache // built roots
	Packages Packages     // what to install
	Log      io.Writer    // one progress line per row and step
	Now      func() time.Time
	// KitScript is the kit's shell script; default Tree/packaging/kit/kit.sh.
	KitScript string
	// caveat prefixes the reasons of the current row's failures with a limit of how
	// it runs here (emulation), so a red cell is not read as the package's fault alone.
	caveat string
}

func (rn *Runner) now() time.Time {
	if rn.Now != nil {
		return rn.Now()
	}
	return time.Now()
}

func (rn *Runner) logf(format string, a ...any) {
	if rn.Log != nil {
		fmt.Fprintf(rn.Log, format+"\n", a...)
	}
}

// Run runs one row and returns its cells. It never fails as a whole: what goes wrong
// becomes a failed or not-run cell with the reason.
func (rn *Runner) Run(ctx context.Context, row Row) (res Result) {
	start := rn.now()
	res = Result{Row: row, Version: rn.Packages.Version, PreviousVersion: rn.Packages.PreviousVersion,
		Date: start.UTC().Format(time.RFC3339)}
	cells := map[string]*Cell{}
	for _, s := range Steps {
		cells[s] = &Cell{Step: s, Status: NotRun}
	}
	defer func() {
		for _, s := range Steps {
			res.Cells = append(res.Cells, *cells[s])
		}
		res.Seconds = round(rn.now().Sub(start).Seconds())
		rn.logf("matrix: %s done in %.0fs", row.Name, res.Seconds)
	}()
	if !row.Runnable() {
		for _, c := range cells {
			c.Reason = "not runnable here: " + row.NotHere
		}
		return res
	}
	abandon := func(from int, why string) {
		for _, s := range Steps[from:] {
			if cells[s].Status == NotRun && cells[s].Reason == "" {
				cells[s].Reason = why
			}
		}
	}
	for s, why := range row.Here.Skip {
		cells[s].Reason = why
	}
	pkg := rn.Packages.Current[pkgKey(row.Arch, row.Format)]
	if pkg == "" {
		abandon(0, fmt.Sprintf("no %s package for %s was built", row.Format, row.Arch))
		return res
	}
	logDir := filepath.Join(rn.Work, "logs", row.Name)
	os.RemoveAll(logDir)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		abandon(0, err.Error())
		return res
	}
	kitBin, err := rn.kitBinary(ctx, row.Arch)
	if err != nil {
		abandon(0, "building the kit's smtpsend: "+err.Error())
		return res
	}
	hostBin, err := rn.kitBinary(ctx, chroot.HostArch())
	if err != nil {
		abandon(0, "building the host's smtpsend: "+err.Error())
		return res
	}
	spec := chroot.Spec{Suite: row.Here.Suite, Arch: row.Arch, Include: row.Here.Include}
	rn.logf("matrix: %s: root %s (%s)", row.Name, spec.Key(), row.Here.Builder)
	tarball, built, err := rn.Cache.Tarball(ctx, spec)
	if err != nil {
		abandon(0, "building the root: "+firstLine(err.Error()))
		os.WriteFile(filepath.Join(logDir, "root.log"), []byte(err.Error()), 0o644)
		return res
	}
	res.RootCached = !built
	if row.Arch != chroot.HostArch() {
		// qmail-queue is setuid: give it its privileges under qemu for this row,
		// and the host its handler back afterwards.
		if restore, err := chroot.EmulateSetuid(row.Arch); err != nil {
			rn.logf("matrix: %s: %v", row.Name, err)
		} else {
			defer func() {
				if err := restore(); err != nil {
					rn.logf("matrix: %s: restoring qemu's handler: %v", row.Name, err)
				}
			}()
		}
	}
	if row.Arch != chroot.HostArch() && !chroot.SetuidEmulated(row.Arch) {
		rn.caveat = "under qemu-user without the binfmt credentials flag, so setuid qmail-queue runs with its caller's ids and cannot write the queue: "
		rn.logf("matrix: %s: %s", row.Name, strings.TrimSuffix(rn.caveat, ": "))
	} else {
		rn.caveat = ""
	}

	// Phase one: a fresh root for the first install and the running MTA.
	phase := func(steps []string, body func(k *kitRoot) bool) {
		k, err := rn.enter(ctx, tarball, row, pkg, kitBin, logDir)
		if err != nil {
			for _, s := range steps {
				if cells[s].Reason == "" {
					cells[s].Reason = "preparing the root: " + firstLine(err.Error())
				}
			}
			return
		}
		defer func() {
			if err := k.root.Close(); err != nil {
				rn.logf("matrix: %s: cleaning up the root: %v", row.Name, err)
			}
		}()
		k.cells = cells
		body(k)
	}
	phase([]string{"install", "users", "start", "smtp", "sendmail", "extras"}, func(k *kitRoot) bool {
		if !k.step(ctx, "install", "install") {
			for _, s := range []string{"users", "start", "smtp", "sendmail", "extras"} {
				if cells[s].Reason == "" {
					cells[s].Reason = "install failed"
				}
			}
			return false
		}
		k.step(ctx, "users", "users")
		if !k.step(ctx, "start", "start") {
			for _, s := range []string{"smtp", "sendmail"} {
				if cells[s].Reason == "" {
					cells[s].Reason = "the MTA did not start"
				}
			}
			k.run(ctx, "stop-after-start", "stop")
			return false
		}
		k.smtpFromOutside(ctx, hostBin)
		k.step(ctx, "sendmail", "sendmail")
		k.run(ctx, "stop", "stop")
		k.step(ctx, "extras", "extras")
		return true
	})
	// Phase three (run second, since it needs no previous build): a fresh root with a
	// qmail installation in it, which the package must take over.
	phase([]string{"overqmail"}, func(k *kitRoot) bool {
		return k.step(ctx, "overqmail", "overqmail")
	})
	// Phase two: another fresh root for the life cycle from the previous build on.
	if rn.Packages.Previous[pkgKey(row.Arch, row.Format)] == "" {
		why := "no previous build to upgrade from"
		if rn.Packages.PreviousWhy != "" {
			why += ": " + rn.Packages.PreviousWhy
		}
		for _, s := range []string{"upgrade", "remove", "purge"} {
			if cells[s].Reason == "" {
				cells[s].Reason = why
			}
		}
		return res
	}
	phase([]string{"upgrade", "remove", "purge"}, func(k *kitRoot) bool {
		if !k.step(ctx, "upgrade", "upgrade") {
			for _, s := range []string{"remove", "purge"} {
				if cells[s].Reason == "" {
					cells[s].Reason = "the upgrade failed"
				}
			}
			return false
		}
		if !k.step(ctx, "remove", "remove") {
			if cells["purge"].Reason == "" {
				cells["purge"].Reason = "remove failed"
			}
			return false
		}
		k.step(ctx, "purge", "purge")
		return true
	})
	return res
}

// kitRoot is an unpacked root with the kit copied in.
type kitRoot struct {
	rn       *Runner
	row      Row
	root     *chroot.Root
	logDir   string
	cells    map[string]*Cell
	smtpPort int
}

// enter unpacks a fresh root and puts the kit, its client and the packages into /kit.
func (rn *Runner) enter(ctx context.Context, tarball string, row Row, pkg, kitBin, logDir string) (*kitRoot, error) {
	r, err := chroot.Unpack(ctx, tarball, rn.Cache.UnpackDir(rn.Work))
	if err != nil {
		return nil, err
	}
	k := &kitRoot{rn: rn, row: row, root: r, logDir: logDir}
	fail := func(err error) (*kitRoot, error) { r.Close(); return nil, err }
	kit := r.Path("/kit")
	for _, d := range []string{"pkg/current", "pkg/previous", "state"} {
		if err := os.MkdirAll(filepath.Join(kit, d), 0o755); err != nil {
			return fail(err)
		}
	}
	script := rn.KitScript
	if script == "" {
		script = filepath.Join(rn.Tree, "packaging", "kit", "kit.sh")
	}
	cp := func(src, dst string, mode os.FileMode) error {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, mode)
	}
	if err := cp(script, filepath.Join(kit, "kit.sh"), 0o755); err != nil {
		return fail(err)
	}
	if err := cp(kitBin, filepath.Join(kit, "smtpsend"), 0o755); err != nil {
		return fail(err)
	}
	inRoot := func(src, sub string) (string, error) {
		if src == "" {
			return "", nil
		}
		dst := filepath.Join(kit, "pkg", sub, filepath.Base(src))
		return "/kit/pkg/" + sub + "/" + filepath.Base(src), cp(src, dst, 0o644)
	}
	cur, err := inRoot(pkg, "current")
	if err != nil {
		return fail(err)
	}
	prev, err := inRoot(rn.Packages.Previous[pkgKey(row.Arch, row.Format)], "previous")
	if err != nil {
		return fail(err)
	}
	smtp, err := freePort()
	if err != nil {
		return fail(err)
	}
	sink, err := freePort()
	if err != nil {
		return fail(err)
	}
	k.smtpPort = smtp
	for _, c := range row.Here.Prepare {
		var out bytes.Buffer
		if code, err := r.Run(ctx, nil, &out, "sh", "-c", c); err != nil || code != 0 {
			return fail(fmt.Errorf("preparing the root with %q: exit %d %v: %s", c, code, err, strings.TrimSpace(out.String())))
		}
	}
	// The split packages built with the core package, for the extras step.
	var extras []string
	if pkg != "" {
		for _, name := range []string{"notqmail-pop3", "notqmail-qmtp"} {
			// deb names are name_version, rpm and apk names name-version.
			var matches []string
			for _, sep := range []string{"_", "-"} {
				m, err := filepath.Glob(filepath.Join(filepath.Dir(pkg), name+sep+"[0-9]*."+row.Format))
				if err != nil {
					return fail(err)
				}
				matches = append(matches, m...)
			}
			for _, m := range matches {
				p, err := inRoot(m, "current")
				if err != nil {
					return fail(err)
				}
				extras = append(extras, p)
			}
		}
	}
	env := fmt.Sprintf("KIT_FORMAT=%s\nKIT_PKG=%s\nKIT_PREV_PKG=%s\nKIT_SMTP_PORT=%d\nKIT_SINK_PORT=%d\nKIT_EXTRA_PKGS='%s'\n",
		row.Format, cur, prev, smtp, sink, strings.Join(extras, " "))
	if err := os.WriteFile(filepath.Join(kit, "env"), []byte(env), 0o644); err != nil {
		return fail(err)
	}
	return k, nil
}

// run runs kit steps, writing their output to logDir/<log>.log; it returns the kit's
// exit status and the log's text.
func (k *kitRoot) run(ctx context.Context, log string, steps ...string) (int, string) {
	var buf bytes.Buffer
	code, err := k.root.Run(ctx, nil, &buf, append([]string{"/kit/kit.sh"}, steps...)...)
	if err != nil {
		fmt.Fprintf(&buf, "\nmatrix: running the kit: %v\n", err)
		code = -1
	}
	os.WriteFile(filepath.Join(k.logDir, log+".log"), buf.Bytes(), 0o644)
	return code, buf.String()
}

// step runs one kit step as the cell of the same name, unless the row skips it.
func (k *kitRoot) step(ctx context.Context, cell string, steps ...string) bool {
	c := k.cells[cell]
	if why, skip := k.row.Here.Skip[cell]; skip {
		c.Status, c.Reason = NotRun, why
		k.rn.logf("matrix: %s %-9s not run: %s", k.row.Name, cell, why)
		return true
	}
	start := time.Now()
	code, out := k.run(ctx, cell, steps...)
	k.record(c, start, code, out)
	return c.Status == Pass
}

// record turns a kit exit status into the cell's status: 0 pass, 3 cannot run here,
// anything else a failure with the kit's last words as the reason.
func (k *kitRoot) record(c *Cell, start time.Time, code int, out string) {
	c.Seconds = round(time.Since(start).Seconds())
	c.Log = filepath.ToSlash(filepath.Join(filepath.Base(filepath.Dir(k.logDir)), k.row.Name, c.Step+".log"))
	switch code {
	case 0:
		c.Status, c.Reason = Pass, ""
	case 3:
		c.Status, c.Reason = NotRun, lastKitLine(out, "kit: NOT RUN: ")
	default:
		c.Status, c.Reason = Fail, lastKitLine(out, "kit: FAIL: ")
		// Only failures that show the symptom carry the caveat.
		if k.rn.caveat != "" && (strings.Contains(out, "qq temporary problem") || strings.Contains(out, "qq_temporary_problem")) {
			c.Reason = k.rn.caveat + c.Reason
		}
		c.LogTail = tail(out, 25)
	}
	msg := string(c.Status)
	if c.Reason != "" {
		msg += ": " + c.Reason
	}
	k.rn.logf("matrix: %s %-9s %s (%.0fs)", k.row.Name, c.Step, msg, c.Seconds)
}

// smtpFromOutside is the smtp cell: the host, outside the root, sends a message to
// qmail-smtpd in the root, then the kit waits for it in the Maildir.
func (k *kitRoot) smtpFromOutside(ctx context.Context, hostBin string) {
	c := k.cells["smtp"]
	start := time.Now()
	var buf bytes.Buffer
	// Read through the root's own view: control may be an absolute link to /etc/qmail,
	// which the host would resolve to its own /etc.
	var me []byte
	var out bytes.Buffer
	if code, _ := k.root.Run(ctx, nil, &out, "head", "-n", "1", "/var/qmail/control/me"); code == 0 {
		me = bytes.TrimSpace(out.Bytes())
	}
	if len(me) == 0 {
		fmt.Fprintf(&buf, "kit: FAIL: no /var/qmail/control/me in the root: no domain to send to\n")
		k.record(c, start, 1, buf.String())
		os.WriteFile(filepath.Join(k.logDir, "smtp.log"), buf.Bytes(), 0o644)
		return
	}
	to := "matrixuser@" + string(me)
	fmt.Fprintf(&buf, "matrix: from the host: smtpsend send to %s at 127.0.0.1:%d\n", to, k.smtpPort)
	cmd := exec.CommandContext(ctx, hostBin, "send", "-addr", fmt.Sprintf("127.0.0.1:%d", k.smtpPort),
		"-from", "matrix@example.org", "-to", to, "-subject", "matrix smtp-in")
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(&buf, "kit: FAIL: the SMTP session from outside the root failed: %v\n", err)
		os.WriteFile(filepath.Join(k.logDir, "smtp.log"), buf.Bytes(), 0o644)
		k.record(c, start, 1, buf.String())
		return
	}
	code, kitOut := k.run(ctx, "smtp-maildir", "maildir")
	buf.WriteString(kitOut)
	os.WriteFile(filepath.Join(k.logDir, "smtp.log"), buf.Bytes(), 0o644)
	k.record(c, start, code, buf.String())
}

// kitBinary builds smtpsend for arch (static, CGO off) once per run.
func (rn *Runner) kitBinary(ctx context.Context, arch string) (string, error) {
	out := filepath.Join(rn.Work, "kit", arch, "smtpsend")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath", "-o", out, "./packaging/kit/smtpsend")
	cmd.Dir = rn.Tree
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, bytes.TrimSpace(b))
	}
	return out, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lastKitLine returns the text after prefix on the kit's last line that has it, else
// the last non-empty line.
func lastKitLine(out, prefix string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], prefix) {
			return strings.TrimPrefix(lines[i], prefix)
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(lines[i]); s != "" {
			return s
		}
	}
	return "no output"
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := strings.Join(lines, "\n")
	if len(out) > 4000 {
		out = out[len(out)-4000:]
	}
	return out
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func round(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// ErrNotRoot is returned when the runner is started without root.
var ErrNotRoot = errors.New("the matrix builds roots and enters them with chroot: run it as root (sudo go run mage.go matrix)")
