// Package bench is `go run mage.go bench`: it runs notqmail and a private Postfix
// side by side, alternately, through the scenarios of issue 10, and writes
// BENCHMARKS.md and bench/results.json from what it measured.
//
// Both MTAs run on 127.0.0.1 high ports from fresh temporary directories, one fresh
// instance per measurement. notqmail runs from a sandbox home (package sandbox);
// Postfix from its own config, queue and data directories with Debian's binaries and
// defaults (fsync included), chroot off. CPU is measured with a cgroup per instance
// (see acct.go), memory by sampling /proc.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/notqmail/notqmail/src/sandbox"
)

// Environment variables that shape a run.
const (
	QuickEnv    = "NOTQMAIL_BENCH_QUICK"    // 1: small counts, no pipeline, no profile
	ScaleEnv    = "NOTQMAIL_BENCH_SCALE"    // messages of scenario 5 (default 100000)
	PipelineEnv = "NOTQMAIL_BENCH_PIPELINE" // 0: skip scenario 6
	ProfileEnv  = "NOTQMAIL_BENCH_PROFILE"  // 0: skip the perf profile
	PortEnv     = "NOTQMAIL_BENCH_PORT"     // first of the loopback ports used (default 27100)
	MessagesEnv = "NOTQMAIL_BENCH_MESSAGES" // messages of scenarios 1-4 (default 2000)
	RenderEnv   = "NOTQMAIL_BENCH_RENDER"   // 1: only rewrite BENCHMARKS.md from bench/results.json
	// OnlyEnv runs only the listed scenarios (e.g. "1,4"; 7 is the perf profile), for
	// working on one of them; such a run writes no report unless NOTQMAIL_BENCH_WRITE=1.
	OnlyEnv     = "NOTQMAIL_BENCH_ONLY"
	SessionsEnv = "NOTQMAIL_BENCH_SESSIONS" // scenario 1's concurrencies, e.g. "10" or "1,10,50"
	WriteEnv    = "NOTQMAIL_BENCH_WRITE"
)

// Options shape a run.
type Options struct {
	Root     string    // module root
	Out      io.Writer // progress; default os.Stdout
	Quick    bool
	Messages int   // scenarios 1-4; default 2000 (quick 40)
	Sessions []int // scenario 1; default 1, 10, 50 (quick 1, 5)
	// TCPSessions are the concurrencies scenario 2 (tcpserver) runs at; default 10
	// (quick: Sessions).
	TCPSessions []int
	Scale       int  // scenario 5; default 100000 (quick 200)
	Window      int  // scenario 5's window; default 10000, at most Scale/5
	Pipeline    bool // run scenario 6
	Profile     bool // perf profile of scenario 1 at 10 sessions
	Postfix     bool // also run Postfix (default: when installed)
	Port        int
	Work        string // scratch directory; default a temp dir
	// Quiet is how calm the machine must be before each measurement; the zero value
	// means DefaultQuiet.
	Quiet Quiet
	// Report and JSON are where the results go; default Root/BENCHMARKS.md and
	// Root/bench/results.json. Empty with NoWrite.
	Report, JSON string
	NoWrite      bool
	// RenderOnly rewrites Report from the results in JSON, measuring nothing.
	RenderOnly bool
	// Only, when not empty, names the scenarios (1-6) to run.
	Only []int
}

// runs reports whether scenario n is to run.
func (o Options) runs(n int) bool { return len(o.Only) == 0 || containsInt(o.Only, n) }

func parseInts(name, s string) ([]int, error) {
	var l []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s=%q: want numbers separated by commas", name, s)
		}
		l = append(l, n)
	}
	return l, nil
}

// FromEnv fills Options from the environment.
func FromEnv(root string) (Options, error) {
	o := Options{Root: root, Pipeline: true, Profile: true}
	o.Quick = os.Getenv(QuickEnv) == "1"
	o.RenderOnly = os.Getenv(RenderEnv) == "1"
	if s := os.Getenv(ScaleEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return o, fmt.Errorf("%s=%q: want a message count", ScaleEnv, s)
		}
		o.Scale = n
	}
	if os.Getenv(PipelineEnv) == "0" {
		o.Pipeline = false
	}
	if os.Getenv(ProfileEnv) == "0" {
		o.Profile = false
	}
	if s := os.Getenv(MessagesEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return o, fmt.Errorf("%s=%q: want a message count", MessagesEnv, s)
		}
		o.Messages = n
	}
	if s := os.Getenv(OnlyEnv); s != "" {
		l, err := parseInts(OnlyEnv, s)
		if err != nil {
			return o, err
		}
		o.Only = l
		o.Pipeline, o.Profile = o.runs(6), o.runs(7)
		o.NoWrite = os.Getenv(WriteEnv) != "1"
	}
	if s := os.Getenv(SessionsEnv); s != "" {
		l, err := parseInts(SessionsEnv, s)
		if err != nil {
			return o, err
		}
		o.Sessions, o.TCPSessions = l, l
	}
	if s := os.Getenv(PortEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1024 || n > 65000 {
			return o, fmt.Errorf("%s=%q: want a port from 1024 to 65000", PortEnv, s)
		}
		o.Port = n
	}
	return o, nil
}

func (o Options) withDefaults() Options {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Messages == 0 {
		o.Messages = 2000
		if o.Quick {
			o.Messages = 40
		}
	}
	if o.Sessions == nil {
		o.Sessions = []int{1, 10, 50}
		if o.Quick {
			o.Sessions = []int{1, 5}
		}
	}
	if o.TCPSessions == nil {
		o.TCPSessions = []int{10}
		if o.Quick {
			o.TCPSessions = o.Sessions
		}
	}
	if o.Scale == 0 {
		o.Scale = 100000
		if o.Quick {
			o.Scale = 200
		}
	}
	if o.Window == 0 {
		o.Window = 10000
	}
	if o.Window > o.Scale/5 {
		o.Window = max(1, o.Scale/5)
	}
	if o.Quick {
		o.Pipeline, o.Profile = false, false
	}
	if o.Port == 0 {
		o.Port = 27100
	}
	if !o.NoWrite {
		if o.Report == "" {
			o.Report = filepath.Join(o.Root, "BENCHMARKS.md")
		}
		if o.JSON == "" {
			o.JSON = filepath.Join(o.Root, "bench", "results.json")
		}
	}
	return o
}

// Results is everything one run measured.
type Results struct {
	Machine      Machine       `json:"machine"`
	Quick        bool          `json:"quick"`
	Measurements []Measurement `json:"measurements"`
	Pipeline     *Pipeline     `json:"pipeline,omitempty"`
	Profile      *Profile      `json:"profile,omitempty"`
	Notes        []string      `json:"notes,omitempty"`
}

// Machine describes where and when the run happened.
type Machine struct {
	CPUs      int    `json:"nproc"`
	Model     string `json:"cpu_model"`
	MemoryMiB int64  `json:"memory_mib"`
	Kernel    string `json:"kernel"`
	Commit    string `json:"commit"`
	Dirty     bool   `json:"dirty"`
	Start     string `json:"start"`
	End       string `json:"end"`
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
	Postfix   string `json:"postfix_version"`
	Go        string `json:"go"`
	// FS is the file system of the run's scratch directory, where both MTAs keep
	// their queues and maildirs.
	FS    *FileSystem `json:"file_system,omitempty"`
	Loads []string    `json:"loadavg_per_scenario,omitempty"`
}

// Run builds the binaries, runs every scenario and writes the report.
func Run(ctx context.Context, o Options) (*Results, error) {
	o = o.withDefaults()
	if o.RenderOnly {
		return Render(o.JSON, o.Report)
	}
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("the bench runs on Linux, not %s", runtime.GOOS)
	}
	if err := ensureTools(ctx, o.Out); err != nil {
		return nil, err
	}
	if !o.Postfix {
		_, err := exec.LookPath("postfix")
		o.Postfix = err == nil
	}
	work := o.Work
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "notqmail-bench-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(work)
	}
	os.Chmod(work, 0o755)
	bin := filepath.Join(work, "bin")
	fmt.Fprintf(o.Out, "==> building notqmail into %s\n", bin)
	if err := buildIn(o.Root, bin); err != nil {
		return nil, err
	}
	res := &Results{Machine: machine(o.Root), Quick: o.Quick}
	if fs, err := fileSystemOf(work, "/proc", "/sys"); err == nil {
		res.Machine.FS = &fs
	} else {
		fmt.Fprintf(o.Out, "==> file system of %s unknown: %v\n", work, err)
	}
	if o.Quick {
		res.Notes = append(res.Notes, "quick mode: small counts, not a benchmark")
	}
	b := &runner{o: o, work: work, bin: bin, res: res, tag: fmt.Sprintf("notqmail-bench-%d", os.Getpid())}

	// Scenario 1 and 2: SMTP in at each concurrency, notqmail (listener), Postfix and
	// notqmail under tcpserver, alternating who goes first.
	for i, s := range o.Sessions {
		if !o.runs(1) && !o.runs(2) {
			break
		}
		order := []string{"notqmail", "postfix", "tcpserver"}
		if i%2 == 1 {
			order = []string{"postfix", "tcpserver", "notqmail"}
		}
		for _, who := range order {
			if who == "tcpserver" && (!containsInt(o.TCPSessions, s) || !o.runs(2)) {
				continue
			}
			if who != "tcpserver" && !o.runs(1) {
				continue
			}
			name := "1 smtp"
			if who == "tcpserver" {
				name = "2 smtp tcpserver"
			}
			b.measure(ctx, who, func(srv server) Measurement {
				return smtpScenario(ctx, srv, name, o.Messages, s, nil, b.warmUp())
			}, nqOptions{TCPServer: who == "tcpserver"}, pfOptions{})
		}
	}
	// Scenario 3: sendmail.
	for _, who := range []string{"notqmail", "postfix"} {
		if !o.runs(3) {
			break
		}
		b.measure(ctx, who, func(srv server) Measurement { return sendmailScenario(ctx, srv, o.Messages, work, b.warmUp()) }, nqOptions{}, pfOptions{})
	}
	// Scenario 4: remote delivery to smtp-sink at concurrency 20.
	for _, who := range []string{"postfix", "notqmail"} {
		if !o.runs(4) {
			break
		}
		sinkPort := o.Port + 50
		sk, err := startSink(ctx, sinkPort)
		if err != nil {
			res.Measurements = append(res.Measurements, Measurement{Scenario: "4 remote", MTA: who, Messages: o.Messages, Error: "smtp-sink: " + err.Error()})
			continue
		}
		b.measure(ctx, who, func(srv server) Measurement {
			return heldScenario(ctx, srv, "4 remote", o.Messages, 0, true, work)
		}, nqOptions{ConcurrencyRemote: 20, SinkPort: sinkPort}, pfOptions{ConcurrencyRemote: 20, SinkPort: sinkPort})
		sk.stop()
	}
	// Scenario 5: scale.
	for _, who := range []string{"notqmail", "postfix"} {
		if !o.runs(5) {
			break
		}
		b.measure(ctx, who, func(srv server) Measurement {
			return heldScenario(ctx, srv, "5 scale", o.Scale, o.Window, false, work)
		}, nqOptions{}, pfOptions{})
	}
	if o.Profile {
		fmt.Fprintf(o.Out, "==> profiling notqmail, scenario 1 at 10 sessions\n")
		p, err := profile(ctx, b, min(o.Messages, 2000))
		if err != nil {
			res.Notes = append(res.Notes, "profile: "+err.Error())
		}
		res.Profile = p
		if o.NoWrite && p != nil {
			// No report will hold it: show it here.
			for _, view := range sortedKeys(p.Reports) {
				fmt.Fprintf(o.Out, "==> profile: %s\n%s\n", view, p.Reports[view])
			}
		}
	}
	if o.Pipeline {
		fmt.Fprintf(o.Out, "==> scenario 6: go run mage.go, cold and warm\n")
		p, err := pipeline(ctx, o.Root, work, o.Out)
		if err != nil {
			res.Notes = append(res.Notes, "pipeline: "+err.Error())
		}
		res.Pipeline = p
		res.Machine.Loads = append(res.Machine.Loads, "6 pipeline: "+loadavg())
	}
	res.Machine.End = time.Now().UTC().Format(time.RFC3339)
	res.Machine.LoadEnd = loadavg()
	if !o.NoWrite {
		if err := write(res, o); err != nil {
			return res, err
		}
		fmt.Fprintf(o.Out, "==> wrote %s and %s\n", o.Report, o.JSON)
	}
	return res, nil
}

type runner struct {
	o    Options
	work string
	bin  string
	res  *Results
	tag  string
	seq  int
}

// inUse reports whether something listens on 127.0.0.1:port.
func inUse(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// warmUp is WarmUp, or nothing in quick mode (a smoke test).
func (b *runner) warmUp() time.Duration {
	if b.o.Quick {
		return 0
	}
	return WarmUp
}

// measure creates a fresh instance of who, runs f on it and records the result.
func (b *runner) measure(ctx context.Context, who string, f func(server) Measurement, nq nqOptions, pf pfOptions) {
	b.seq++
	tag := fmt.Sprintf("%s-%d", b.tag, b.seq)
	port := b.o.Port + b.seq%40
	var srv server
	var err error
	switch {
	case who == "postfix" && !b.o.Postfix:
		return
	case inUse(port):
		// Another program (another run of the bench?) would answer in our place, and
		// the figures would be its.
		err = fmt.Errorf("127.0.0.1:%d is in use: is another bench running? (%s)", port, PortEnv)
	case who == "postfix":
		pf.Port = port
		srv, err = newPostfix(b.work, tag, pf)
	case who == "tcpserver":
		nq.TCPServer = true
		fallthrough
	default:
		nq.Port = port
		srv, err = newNotqmail(b.work, b.bin, tag, nq)
	}
	var m Measurement
	if err != nil {
		m = Measurement{MTA: who, Error: err.Error()}
	} else {
		q := b.o.Quiet
		if q == (Quiet{}) {
			q = DefaultQuiet
			if b.o.Quick {
				q.Limit = 0 // a smoke test: note the pressure, wait for nothing
			}
		}
		waited, state := q.settle(ctx, readPressure)
		m = f(srv)
		m.Settled = fmt.Sprintf("%s after %.0f s", state, waited.Seconds())
		srv.Close()
	}
	load := loadavg()
	fmt.Fprintf(b.o.Out, "    %-18s %-22s sessions %-3d %s  (load %s; at start %s)\n", m.Scenario, m.MTA, m.Sessions, summary(m), load, m.Settled)
	b.res.Machine.Loads = append(b.res.Machine.Loads, fmt.Sprintf("%s %s %d: %s", m.Scenario, m.MTA, m.Sessions, load))
	b.res.Measurements = append(b.res.Measurements, m)
}

func summary(m Measurement) string {
	if m.Error != "" {
		return "ERROR " + m.Error
	}
	kib, writes, flushes := diskFigures(m)
	return fmt.Sprintf("%d msgs, accept %.1f/s, end-to-end %.1f/s, %.2f CPU ms/msg, disk %s KiB in %s writes and %s flushes/msg, peak RSS %s", m.Messages, m.Accept, m.E2E, m.CPUms, kib, writes, flushes, mib(m.PeakRSS))
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// buildIn builds the sandbox binaries (with symbols, for perf) from root.
func buildIn(root, dir string) error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	if err := os.Chdir(root); err != nil {
		return err
	}
	defer os.Chdir(wd)
	// Static, as the packages build them (release.BuildBinaries), but with symbols for perf.
	if old, ok := os.LookupEnv("CGO_ENABLED"); ok {
		defer os.Setenv("CGO_ENABLED", old)
	} else {
		defer os.Unsetenv("CGO_ENABLED")
	}
	os.Setenv("CGO_ENABLED", "0")
	return sandbox.Build(dir)
}

// ensureTools installs Postfix and ucspi-tcp as root on Debian when smtp-source or
// tcpserver is missing; otherwise it says what to install.
func ensureTools(ctx context.Context, out io.Writer) error {
	var missing []string
	for tool, pkg := range map[string]string{"smtp-source": "postfix", "smtp-sink": "postfix", "postfix": "postfix", "tcpserver": "ucspi-tcp"} {
		if _, err := exec.LookPath(tool); err != nil && !contains(missing, pkg) {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("the bench needs %s: sudo apt-get install %s", strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	fmt.Fprintf(out, "==> apt-get install %s\n", strings.Join(missing, " "))
	cmd := exec.CommandContext(ctx, "apt-get", append([]string{"install", "-y", "--no-install-recommends"}, missing...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout, cmd.Stderr = out, out
	return cmd.Run()
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func containsInt(l []int, n int) bool {
	for _, x := range l {
		if x == n {
			return true
		}
	}
	return false
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func machine(root string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Start: time.Now().UTC().Format(time.RFC3339), LoadStart: loadavg(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				m.MemoryMiB = kb / 1024
			}
		}
	}
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		m.Kernel = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "-C", root, "status", "--porcelain", "--", "src").Output(); err == nil {
		m.Dirty = len(strings.TrimSpace(string(out))) > 0
	}
	if out, err := exec.Command("postconf", "-d", "-h", "mail_version").Output(); err == nil {
		m.Postfix = strings.TrimSpace(string(out))
	}
	return m
}

// Render rewrites the report at md from the results at jsonPath.
func Render(jsonPath, md string) (*Results, error) {
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return nil, err
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("%s: %w", jsonPath, err)
	}
	return &res, os.WriteFile(md, []byte(Markdown(&res)), 0o644)
}

func write(res *Results, o Options) error {
	if err := os.MkdirAll(filepath.Dir(o.JSON), 0o755); err != nil {
		return err
	}
	j, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.JSON, append(j, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(o.Report, []byte(Markdown(res)), 0o644)
}
