package spawn

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/users"
)

// waitUntil polls cond; the limit is a deadlock guard, not a speed expectation.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// workerHome is a sandbox home with the real binaries, QMAILHOME pointing at it.
func workerHome(t *testing.T, users ...string) *sandbox.Home {
	t.Helper()
	h := sandbox.New(t, sandbox.Options{Users: users})
	t.Setenv("QMAILHOME", h.Dir)
	return h
}

func deliverMsg(t *testing.T, l *Local, msg, sender, recip string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "mess")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(msg)
	f.Seek(0, 0)
	return string(l.Deliver(f, sender, recip, strings.LastIndexByte(recip, '@')))
}

// livePIDs lists the pool's worker processes.
func (p *Pool) livePIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var pids []int
	for _, w := range p.workers {
		pids = append(pids, w.cmd.Process.Pid)
	}
	sort.Ints(pids)
	return pids
}

func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// A zombie has exited; qmail-lspawn reaps it promptly.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] == "Z"
}

var (
	qpLine = regexp.MustCompile(`(?m)^qp [0-9]+$`)
	ufDate = regexp.MustCompile(`(?m)^UFLINE=From (\S+) .*$`)
)

// TestWorkerReportsMatchExec delivers the same messages through exec'ed qmail-local
// and through a worker and wants byte-identical reports and deliveries.
func TestWorkerReportsMatchExec(t *testing.T) {
	h := workerHome(t, "alice", "bob")
	ah := h.UserHome("alice")
	// A queue filter that talks on its standard error: that goes into the report of
	// the forwarding delivery.
	filter := filepath.Join(h.Dir, "bin", "filter")
	if err := os.WriteFile(filter, []byte("#!/bin/sh\necho \"filter: here\" >&2\nexec "+filepath.Join(h.Bin, "qmail-queue")+"\n"), 0755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("QMAILQUEUE", filter)
	dot := map[string]string{
		".qmail-mbox": "./Mailbox\n",
		// The program shows its whole environment, so any difference there shows.
		".qmail-prog-default": "|echo \"out $DEFAULT\"; echo \"err $SENDER\" >&2; env | LC_ALL=C sort; exit $DEFAULT\n",
		".qmail-fwd":          "&bob@" + h.Domain + "\n./Maildir/\n",
		".qmail-nomd":         "./NoSuchMaildir/\n",
		".qmail-long":         "|i=0; while [ $i -lt 600 ]; do echo 0123456789; i=$((i+1)); done; exit 100\n",
		".qmail-both":         "./Maildir/\n./Mailbox\n|cat >/dev/null; echo piped\n",
	}
	for name, text := range dot {
		if err := os.WriteFile(filepath.Join(ah, name), []byte(text), 0644); err != nil {
			t.Fatal(err)
		}
	}
	pool := &Pool{Exe: filepath.Join(h.Bin, "notqmail")}
	defer pool.Close()
	viaExec := &Local{Home: h.Dir, DefaultDelivery: "./Maildir/", Sandbox: true}
	viaWorker := &Local{Home: h.Dir, DefaultDelivery: "./Maildir/", Sandbox: true, Workers: pool}

	d := h.Domain
	msg := "From: joe@example.net\nSubject: hello\n\nbody line\n"
	cases := []struct{ recip, msg, kind string }{
		{"alice@" + d, msg, "K"},
		{"alice-mbox@" + d, msg, "K"},
		{"alice-prog-0@" + d, msg, "K"},
		{"alice-prog-99@" + d, msg, "K"},
		{"alice-prog-100@" + d, msg, "D"},
		{"alice-prog-111@" + d, msg, "Z"},
		{"alice-fwd@" + d, msg, "K"},
		{"alice-nomd@" + d, msg, "Z"},
		{"alice-nosuch@" + d, msg, "D"},
		{"alice-long@" + d, msg, "D"},
		{"alice-both@" + d, msg, "K"},
		{"alice@" + d, "Delivered-To: alice@" + d + "\n" + msg, "D"},
	}
	for _, c := range cases {
		before := maildirs(t, h)
		want := deliverMsg(t, viaExec, c.msg, "joe@example.net", c.recip)
		afterExec := maildirs(t, h)
		got := deliverMsg(t, viaWorker, c.msg, "joe@example.net", c.recip)
		afterWorker := maildirs(t, h)
		// qmail-queue's pid, and UFLINE's date (by the second), may differ.
		norm := func(s string) string {
			return ufDate.ReplaceAllString(qpLine.ReplaceAllString(s, "qp N"), "UFLINE=From $1")
		}
		want, got = norm(want), norm(got)
		if testing.Verbose() {
			t.Logf("%s: %q", c.recip, want)
		}
		if got != want {
			t.Errorf("%s: worker report\n%q\nexec report\n%q", c.recip, got, want)
		}
		if strings.Contains(c.recip, "fwd") && !strings.Contains(want, "filter: here\n") {
			t.Errorf("%s: no word from the queue filter in %q", c.recip, want)
		}
		if !strings.HasPrefix(want, c.kind) {
			t.Errorf("%s: report %q, want kind %s", c.recip, want, c.kind)
		}
		// What the exec'ed delivery added, the worker added again.
		if e, w := diff(before, afterExec), diff(afterExec, afterWorker); e != w {
			t.Errorf("%s: worker delivered\n%s\nexec delivered\n%s", c.recip, w, e)
		}
	}
	if strings.Contains(deliverMsg(t, viaWorker, msg, "", "alice-prog-0@"+d), "SENDER=\n") == false {
		t.Errorf("bounce sender not passed through the worker")
	}
	if len(pool.livePIDs()) != 1 {
		t.Errorf("workers %v, want one for the one account", pool.livePIDs())
	}
}

// snapshot is what has been delivered: each Maildir message as "user: content",
// counted, and each user's Mailbox.
type snapshot struct {
	msgs  map[string]int
	mboxs map[string]string
}

var fromDate = regexp.MustCompile(`(?m)^From (\S+) .*$`)

func maildirs(t *testing.T, h *sandbox.Home) snapshot {
	t.Helper()
	s := snapshot{map[string]int{}, map[string]string{}}
	for _, u := range []string{"alice", "bob"} {
		msgs, err := h.Messages(u)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range msgs {
			s.msgs[u+": "+string(x.Data)]++
		}
		if b, err := os.ReadFile(filepath.Join(h.UserHome(u), "Mailbox")); err == nil {
			// The From line's date differs by the second.
			s.mboxs[u] = fromDate.ReplaceAllString(string(b), "From $1")
		}
	}
	return s
}

// diff describes what was delivered between two snapshots.
func diff(before, after snapshot) string {
	var out []string
	for k, n := range after.msgs {
		if before.msgs[k] < n {
			out = append(out, k)
		}
	}
	for u, m := range after.mboxs {
		if grown := strings.TrimPrefix(m, before.mboxs[u]); grown != "" {
			out = append(out, u+" mbox: "+grown)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n---\n")
}

// TestWorkerCrash kills a worker in the middle of a delivery: the delivery reports
// qmail-local's crash (temporary, so qmail-send retries it), and the retry gets a new
// worker and succeeds.
func TestWorkerCrash(t *testing.T) {
	h := workerHome(t, "alice")
	ah := h.UserHome("alice")
	dir, err := os.MkdirTemp("", "worker-crash-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0777) // the program runs as the sandbox owner
	pidfile := filepath.Join(dir, "slow.pid")
	os.WriteFile(filepath.Join(ah, ".qmail-slow"), []byte("|echo $$ >"+pidfile+"; exec sleep 600\n"), 0644)
	defer func() {
		if b, err := os.ReadFile(pidfile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}()
	pool := &Pool{Exe: filepath.Join(h.Bin, "notqmail")}
	defer pool.Close()
	l := &Local{Home: h.Dir, DefaultDelivery: "./Maildir/", Sandbox: true, Workers: pool}
	mess, err := os.CreateTemp(dir, "mess")
	if err != nil {
		t.Fatal(err)
	}
	defer mess.Close()
	mess.WriteString("Subject: x\n\nhi\n")
	recip := "alice-slow@" + h.Domain
	res := make(chan string, 1)
	go func() { res <- string(l.Deliver(mess, "joe@example.net", recip, strings.LastIndexByte(recip, '@'))) }()
	waitUntil(t, "the slow program", func() bool {
		b, err := os.ReadFile(pidfile)
		return err == nil && len(b) > 0
	})
	pids := pool.livePIDs()
	if len(pids) != 1 {
		t.Fatalf("workers %v", pids)
	}
	syscall.Kill(pids[0], syscall.SIGKILL)
	if got := <-res; got != "Zqmail-local crashed.\n" {
		t.Errorf("report after the worker died: %q", got)
	}
	os.WriteFile(filepath.Join(ah, ".qmail-slow"), []byte("./Maildir/\n"), 0644)
	if got := deliverMsg(t, l, "Subject: x\n\nhi\n", "joe@example.net", "alice-slow@"+h.Domain); got != "Kdid 1+0+0\n" {
		t.Errorf("retry: %q", got)
	}
	if now := pool.livePIDs(); len(now) != 1 || now[0] == pids[0] {
		t.Errorf("workers after the crash %v, before %v", now, pids)
	}
	if msgs, _ := h.Messages("alice"); len(msgs) != 1 {
		t.Errorf("%d messages delivered", len(msgs))
	}
}

// TestWorkerLifetime: a worker exits once idle, and is replaced after Uses
// deliveries; concurrent deliveries share one worker.
func TestWorkerLifetime(t *testing.T) {
	h := workerHome(t, "alice")
	pool := &Pool{Exe: filepath.Join(h.Bin, "notqmail"), Uses: 3, Idle: 300 * time.Millisecond}
	defer pool.Close()
	l := &Local{Home: h.Dir, DefaultDelivery: "./Maildir/", Sandbox: true, Workers: pool}
	if got := deliverMsg(t, l, "Subject: 1\n\n1\n", "a@b", "alice@"+h.Domain); got != "Kdid 1+0+0\n" {
		t.Fatalf("first delivery: %q", got)
	}
	first := pool.livePIDs()
	if len(first) != 1 {
		t.Fatalf("workers %v", first)
	}
	waitUntil(t, "the idle worker to exit", func() bool { return gone(first[0]) && len(pool.livePIDs()) == 0 })

	// Uses 3: deliveries 1-3 on one worker, 4-6 on the next.
	seen := map[int]bool{}
	for i := 0; i < 6; i++ {
		if got := deliverMsg(t, l, "Subject: n\n\nn\n", "a@b", "alice@"+h.Domain); got != "Kdid 1+0+0\n" {
			t.Fatalf("delivery %d: %q", i, got)
		}
		for _, p := range pool.livePIDs() {
			seen[p] = true
		}
	}
	if len(seen) != 2 {
		t.Errorf("6 deliveries at 3 uses each ran on workers %v", seen)
	}

	// Concurrent deliveries.
	pool.Uses = 1000
	errs := make(chan string, 20)
	for i := 0; i < 20; i++ {
		go func() { errs <- deliverMsg(t, l, "Subject: c\n\nc\n", "a@b", "alice@"+h.Domain) }()
	}
	for i := 0; i < 20; i++ {
		if got := <-errs; got != "Kdid 1+0+0\n" {
			t.Errorf("concurrent delivery: %q", got)
		}
	}
	if msgs, _ := h.Messages("alice"); len(msgs) != 27 {
		t.Errorf("%d messages, want 27", len(msgs))
	}

	// Close returns once the workers have exited and been reaped.
	pids := pool.livePIDs()
	pool.Close()
	for _, pid := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Errorf("worker %d still there after Close", pid)
		}
	}
}

// TestWorkerNotForWrapper: a bin/qmail-local that is not our binary (a site's wrapper)
// is exec'ed for every delivery.
func TestWorkerNotForWrapper(t *testing.T) {
	h := workerHome(t, "alice")
	ql := filepath.Join(h.Bin, "qmail-local")
	os.Remove(ql)
	wrapper := "#!/bin/sh\necho wrapped\nexec " + filepath.Join(h.Bin, "notqmail") + " qmail-local \"$@\"\n"
	if err := os.WriteFile(ql, []byte(wrapper), 0755); err != nil {
		t.Fatal(err)
	}
	pool := &Pool{Exe: filepath.Join(h.Bin, "notqmail")}
	defer pool.Close()
	l := &Local{Home: h.Dir, DefaultDelivery: "./Maildir/", Sandbox: true, Workers: pool}
	if got := deliverMsg(t, l, "Subject: w\n\nw\n", "a@b", "alice@"+h.Domain); got != "Kwrapped\ndid 1+0+0\n" {
		t.Errorf("report %q", got)
	}
	if p := pool.livePIDs(); len(p) != 0 {
		t.Errorf("workers %v started for a wrapper", p)
	}
}

// TestWorkerPerAccount runs as root: deliveries for two accounts run on two workers,
// each as its account's uid and gid with no supplementary groups, and the delivered
// files belong to the recipient.
func TestWorkerPerAccount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	sb := sandbox.New(t, sandbox.Options{}) // for its binaries
	base, err := os.MkdirTemp("", "lspawn-workers-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	os.Chmod(base, 0755)
	for _, d := range []string{"bin", "users"} {
		os.Mkdir(filepath.Join(base, d), 0755)
	}
	if err := os.Symlink(filepath.Join(sb.Bin, "notqmail"), filepath.Join(base, "bin", "qmail-local")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("QMAILHOME", base) // root-owned: no sandbox mode anywhere
	accounts := map[string][2]int{"u1": {64001, 64011}, "u2": {64002, 64012}}
	var assign strings.Builder
	for u, id := range accounts {
		hd := filepath.Join(base, u)
		for _, d := range []string{"", "Maildir", "Maildir/new", "Maildir/cur", "Maildir/tmp"} {
			os.Mkdir(filepath.Join(hd, d), 0700)
			os.Chown(filepath.Join(hd, d), id[0], id[1])
		}
		os.Chmod(hd, 0755)
		// The program line shows who runs it.
		os.WriteFile(filepath.Join(hd, ".qmail-id"), []byte("|echo \"$(id -u):$(id -g):$(id -G)\"\n"), 0644)
		fmt.Fprintf(&assign, "=%s:%s:%d:%d:%s:::\n+%s-:%s:%d:%d:%s:-::\n", u, u, id[0], id[1], hd, u, u, id[0], id[1], hd)
	}
	assign.WriteString(".\n")
	os.WriteFile(filepath.Join(base, "users", "assign"), []byte(assign.String()), 0644)
	if err := users.NewU(filepath.Join(base, "users", "assign"), filepath.Join(base, "users", "cdb")); err != nil {
		t.Fatal(err)
	}
	pool := &Pool{Exe: filepath.Join(sb.Bin, "notqmail")}
	defer pool.Close()
	l := &Local{Home: base, DefaultDelivery: "./Maildir/", Workers: pool}
	for i := 0; i < 2; i++ {
		for u, id := range accounts {
			want := fmt.Sprintf("K%d:%d:%d\ndid 0+0+1\n", id[0], id[1], id[1])
			if got := deliverMsg(t, l, "Subject: id\n\nx\n", "a@b", u+"-id@here"); got != want {
				t.Errorf("%s: %q, want %q", u, got, want)
			}
			if got := deliverMsg(t, l, "Subject: md\n\nx\n", "a@b", u+"@here"); got != "Kdid 1+0+0\n" {
				t.Errorf("%s: %q", u, got)
			}
		}
	}
	pids := pool.livePIDs()
	if len(pids) != 2 {
		t.Fatalf("workers %v, want one per account", pids)
	}
	seen := map[string]bool{}
	for _, pid := range pids {
		ids := procIDs(t, pid)
		seen[ids] = true
	}
	for _, id := range accounts {
		if k := fmt.Sprintf("%d %d ", id[0], id[1]); !seen[k] {
			t.Errorf("no worker with uid/gid/groups %v: %v", id, seen)
		}
	}
	for u, id := range accounts {
		ents, _ := os.ReadDir(filepath.Join(base, u, "Maildir", "new"))
		if len(ents) != 2 {
			t.Errorf("%s: %d messages", u, len(ents))
		}
		for _, e := range ents {
			fi, err := os.Stat(filepath.Join(base, u, "Maildir", "new", e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if int(st.Uid) != id[0] || int(st.Gid) != id[1] {
				t.Errorf("%s: %s owned by %d:%d", u, e.Name(), st.Uid, st.Gid)
			}
		}
	}
}

// procIDs is a process's real uid, real gid and supplementary groups, from /proc.
func procIDs(t *testing.T, pid int) string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var uid, gid, groups string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		switch {
		case len(fs) > 1 && fs[0] == "Uid:":
			uid = fs[1]
		case len(fs) > 1 && fs[0] == "Gid:":
			gid = fs[1]
		case len(fs) > 0 && fs[0] == "Groups:":
			groups = strings.Join(fs[1:], " ")
		}
	}
	return uid + " " + gid + " " + groups
}

// BenchmarkLocalDelivery is one Maildir delivery through qmail-lspawn's Local, with
// qmail-local exec'ed and on a worker.
func BenchmarkLocalDelivery(b *testing.B) {
	for _, worker := range []bool{false, true} {
		name := "exec"
		if worker {
			name = "worker"
		}
		b.Run(name, func(b *testing.B) {
			h := sandbox.New(b, sandbox.Options{Users: []string{"alice"}})
			b.Setenv("QMAILHOME", h.Dir)
			l := &Local{Home: h.Dir, DefaultDelivery: "./Maildir/", Sandbox: true}
			if worker {
				l.Workers = &Pool{Exe: filepath.Join(h.Bin, "notqmail")}
			}
			f, err := os.CreateTemp(b.TempDir(), "mess")
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			f.WriteString("From: joe@example.net\nSubject: bench\n\n" + strings.Repeat("body line\n", 200))
			recip := "alice@" + h.Domain
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if rep := l.Deliver(f, "joe@example.net", recip, strings.LastIndexByte(recip, '@')); string(rep) != "Kdid 1+0+0\n" {
					b.Fatalf("report %q", rep)
				}
			}
			b.StopTimer()
			if worker {
				// The worker's CPU time counts once it has been reaped, which Close
				// waits for.
				l.Workers.Close()
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// BenchmarkLocalDeliveryConcurrent is BenchmarkLocalDelivery's worker case with ten
// deliveries in flight, as qmail-send runs them: the worker's Maildir deliveries then
// share their syncfs calls.
func BenchmarkLocalDeliveryConcurrent(b *testing.B) {
	h := sandbox.New(b, sandbox.Options{Users: []string{"alice"}})
	b.Setenv("QMAILHOME", h.Dir)
	l := &Local{Home: h.Dir, DefaultDelivery: "./Maildir/", Sandbox: true,
		Workers: &Pool{Exe: filepath.Join(h.Bin, "notqmail")}}
	f, err := os.CreateTemp(b.TempDir(), "mess")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	f.WriteString("From: joe@example.net\nSubject: bench\n\n" + strings.Repeat("body line\n", 200))
	recip := "alice@" + h.Domain
	cpu0 := cpuTime()
	b.SetParallelism(5) // 10 goroutines on 2 CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// Its own descriptor: deliveries reading one file offset would get in each
		// other's way, where qmail-send's each have their own message.
		mess, err := os.Open(f.Name())
		if err != nil {
			b.Error(err)
			return
		}
		defer mess.Close()
		for pb.Next() {
			if rep := l.Deliver(mess, "joe@example.net", recip, strings.LastIndexByte(recip, '@')); string(rep) != "Kdid 1+0+0\n" {
				b.Errorf("report %q", rep)
				return
			}
		}
	})
	b.StopTimer()
	l.Workers.Close()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// cpuTime is the CPU time used by this process and its reaped children.
func cpuTime() time.Duration {
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	var d time.Duration
	for _, ru := range []syscall.Rusage{self, kids} {
		d += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return d
}

// TestWorkerEviction: with room for one worker, a second account's delivery retires
// the first account's idle worker; while the first one is busy, the second account's
// delivery is exec'ed instead.
func TestWorkerEviction(t *testing.T) {
	h := workerHome(t, "alice", "bob")
	// Two accounts with ids of their own (in sandbox mode nobody switches to them,
	// but the pool keys its workers by them).
	assign := fmt.Sprintf("=alice:alice:1001:1001:%s:::\n=bob:bob:1002:1002:%s:::\n+bob-:bob:1002:1002:%s:-::\n.\n",
		h.UserHome("alice"), h.UserHome("bob"), h.UserHome("bob"))
	if err := os.WriteFile(filepath.Join(h.Dir, "users", "assign"), []byte(assign), 0644); err != nil {
		t.Fatal(err)
	}
	if err := users.NewU(filepath.Join(h.Dir, "users", "assign"), filepath.Join(h.Dir, "users", "cdb")); err != nil {
		t.Fatal(err)
	}
	pool := &Pool{Exe: filepath.Join(h.Bin, "notqmail"), Max: 1}
	defer pool.Close()
	l := &Local{Home: h.Dir, DefaultDelivery: "./Maildir/", Sandbox: true, Workers: pool}
	if got := deliverMsg(t, l, "Subject: a\n\na\n", "x@y", "alice@"+h.Domain); got != "Kdid 1+0+0\n" {
		t.Fatalf("alice: %q", got)
	}
	alice := pool.livePIDs()
	if got := deliverMsg(t, l, "Subject: b\n\nb\n", "x@y", "bob@"+h.Domain); got != "Kdid 1+0+0\n" {
		t.Fatalf("bob: %q", got)
	}
	bob := pool.livePIDs()
	if len(alice) != 1 || len(bob) != 1 || alice[0] == bob[0] {
		t.Fatalf("workers: alice's %v, then bob's %v", alice, bob)
	}
	waitUntil(t, "alice's evicted worker to exit", func() bool { return gone(alice[0]) })

	// bob's worker busy with a slow program: alice's delivery goes the exec way.
	dir, err := os.MkdirTemp("", "worker-evict-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0777)
	gate := filepath.Join(dir, "gate")
	os.WriteFile(filepath.Join(h.UserHome("bob"), ".qmail-wait"),
		[]byte("|touch "+gate+".in; while [ ! -e "+gate+" ]; do sleep 0.05; done\n"), 0644)
	res := make(chan string, 1)
	mess, err := os.CreateTemp(dir, "mess")
	if err != nil {
		t.Fatal(err)
	}
	defer mess.Close()
	recip := "bob-wait@" + h.Domain
	go func() { res <- string(l.Deliver(mess, "x@y", recip, strings.LastIndexByte(recip, '@'))) }()
	waitUntil(t, "bob's program to start", func() bool { _, err := os.Stat(gate + ".in"); return err == nil })
	if got := deliverMsg(t, l, "Subject: a2\n\na2\n", "x@y", "alice@"+h.Domain); got != "Kdid 1+0+0\n" {
		t.Errorf("alice while bob's worker is busy: %q", got)
	}
	if now := pool.livePIDs(); len(now) != 1 || now[0] != bob[0] {
		t.Errorf("workers %v, want only bob's %v", now, bob)
	}
	os.WriteFile(gate, nil, 0644)
	if got := <-res; got != "Kdid 0+0+1\n" {
		t.Errorf("bob's program delivery: %q", got)
	}
}
