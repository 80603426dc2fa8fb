package bench

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestWindowRates(t *testing.T) {
	t0 := time.Unix(1000, 0)
	got := windowRates(t0, []time.Time{t0.Add(2 * time.Second), t0.Add(3 * time.Second)}, 100)
	if len(got) != 2 || got[0] != 50 || got[1] != 100 {
		t.Fatalf("windowRates = %v, want [50 100]", got)
	}
}

func TestParseStatusAndPids(t *testing.T) {
	p := parseStatus([]byte("Name:\tqmail-send\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"))
	if p.name != "qmail-send" || p.rss != 1024*1024 || p.hwm != 2048*1024 {
		t.Fatalf("parseStatus = %+v", p)
	}
	if got := parsePids([]byte("12\n34\n")); len(got) != 2 || got[1] != 34 {
		t.Fatalf("parsePids = %v", got)
	}
}

func TestWrapWithoutCgroup(t *testing.T) {
	a := &acct{}
	argv := a.wrap("/tmp/pid", "prog", "arg")
	if argv[0] != "/bin/sh" || strings.Contains(argv[2], "cgroup.procs") || argv[len(argv)-1] != "arg" {
		t.Fatalf("wrap = %q", argv)
	}
	if _, err := a.cpu(); err == nil {
		t.Fatal("cpu without a cgroup did not fail")
	}
	w := (&acct{dir: "/cg/x"}).wrap("/tmp/pid", "prog")
	if !strings.Contains(w[2], "'/cg/x/cgroup.procs'") {
		t.Fatalf("wrap with cgroup = %q", w)
	}
}

func TestMessageSize(t *testing.T) {
	if n := len(message(4096)); n != 4096 {
		t.Fatalf("message is %d bytes", n)
	}
}

func TestMarkdownRatiosAndProfile(t *testing.T) {
	r := &Results{
		Machine: Machine{CPUs: 2, Commit: "abc", Loads: []string{"1 smtp notqmail 10: 1.00 2.00 3.00"},
			FS: &FileSystem{Type: "ext4", Source: "/dev/vda", Options: "rw", Super: "rw,discard", Journal: "no"}},
		Measurements: []Measurement{
			{Scenario: "1 smtp", MTA: "notqmail", Sessions: 10, Messages: 100, E2E: 300, CPUms: 2, DiskKiB: 61.4, Writes: 14.25, Flushes: 0.5},
			{Scenario: "1 smtp", MTA: "Postfix", Sessions: 10, Messages: 100, E2E: 200, CPUms: 4},
			{Scenario: "2 smtp tcpserver", MTA: "notqmail (tcpserver)", Sessions: 10, Messages: 100, E2E: 100, CPUms: 8},
			{Scenario: "3 sendmail", MTA: "notqmail", Sessions: 1, Messages: 100, E2E: 150, CPUms: 5},
			{Scenario: "3 sendmail", MTA: "Postfix", Sessions: 1, Messages: 100, E2E: 100, CPUms: 9},
			{Scenario: "5 scale", MTA: "notqmail", Messages: 20, E2E: 10, WindowSize: 10, Windows: []float64{10, 8}, DaemonRSS: []int64{1 << 20, 1 << 20}},
		},
		Profile: &Profile{Run: Measurement{Messages: 10}, Reports: map[string]string{
			"qmail-start, by program": "   60.00%   600  qmail-send\n   40.00%   400  qmail-local",
			"qmail-smtpd, by program": "  100.00%  1000  qmail-smtpd",
		}},
	}
	md := Markdown(r)
	for _, want := range []string{"| 1.50× | 0.50× | 1.00 2.00 3.00 |", "| 0.50× | 2.00× |",
		"| 2.00 | 61 | 14.2 | 0.50 |", "| 4.00 | - | - | - |", "Last window over first: 0.80.",
		"| qmail-smtpd | 1000 | 50.0% |", "| qmail-send | 600 | 30.0% |",
		"| queues and maildirs on | ext4 on /dev/vda, without a journal (mount rw; file system rw,discard) |",
		"Scenario 3 sendmail, notqmail at 1 session: 1.50× Postfix's end-to-end rate (target at least 1×): met."} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// TestQuickRun runs the whole harness in quick mode, Postfix included only when it is
// installed. It checks that every measurement completed, never how fast.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	for _, tool := range []string{"smtp-source", "smtp-sink", "tcpserver"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian packages postfix, ucspi-tcp)", tool)
		}
	}
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	o := Options{Root: root + "/../..", Quick: true, NoWrite: true, Out: &out, Port: 27300, Messages: 10, Scale: 20}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	_, pfErr := exec.LookPath("postfix")
	want := 2*2 + 3 // notqmail: scenarios 1 and 2 at two concurrencies, 3, 4, 5
	if pfErr == nil {
		want += 2 + 3 // Postfix: scenario 1 at two concurrencies, 3, 4, 5
	}
	if len(res.Measurements) != want {
		t.Errorf("%d measurements, want %d:\n%s", len(res.Measurements), want, out.String())
	}
	for _, m := range res.Measurements {
		if m.Error != "" {
			t.Errorf("%s %s: %s", m.Scenario, m.MTA, m.Error)
		}
	}
	t.Log(out.String())
	if md := Markdown(res); !strings.Contains(md, "Quick mode") {
		t.Error("quick report does not say so")
	}
}

func TestRenderFromJSON(t *testing.T) {
	dir := t.TempDir()
	r := &Results{Measurements: []Measurement{{Scenario: "4 remote", MTA: "notqmail", Messages: 5, E2E: 1}}}
	if err := write(r, Options{JSON: dir + "/r.json", Report: dir + "/B.md"}); err != nil {
		t.Fatal(err)
	}
	os.Remove(dir + "/B.md")
	if _, err := Run(context.Background(), Options{RenderOnly: true, JSON: dir + "/r.json", Report: dir + "/B.md"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dir + "/B.md")
	if err != nil || !strings.Contains(string(b), "| 4 remote | notqmail | - | 5 |") {
		t.Fatalf("rendered report (%v):\n%s", err, b)
	}
}

func TestPressure(t *testing.T) {
	text := "some avg10=6.79 avg60=13.05 avg300=25.06 total=5594642378\nfull avg10=4.65 avg60=4.69 avg300=10.29 total=2147892243\n"
	got, err := pressure(text)
	if err != nil || got != 6.79 {
		t.Errorf("pressure = %v, %v; want 6.79", got, err)
	}
	for _, bad := range []string{"", "full avg10=1.00", "some avg10=x", "some avg60=1"} {
		if _, err := pressure(bad); err == nil {
			t.Errorf("pressure(%q) did not fail", bad)
		}
	}
}

func TestSettleWaitsForQuiet(t *testing.T) {
	// Pressure falls below the limits on the third reading of each file.
	reads := map[string]int{}
	read := func(what string) (float64, error) {
		reads[what]++
		if reads[what] < 3 {
			return 50, nil
		}
		return 0.5, nil
	}
	q := Quiet{CPU: 10, IO: 2, Limit: time.Minute}
	_, state := q.settle(context.Background(), read)
	if reads["cpu"] != 3 || reads["io"] != 3 {
		t.Errorf("read cpu %d, io %d times; want 3 each", reads["cpu"], reads["io"])
	}
	if state != "cpu 0.5% io 0.5%" {
		t.Errorf("settle state %q", state)
	}
	// A machine that never calms down is measured anyway after the limit, and says so.
	busy := func(string) (float64, error) { return 90, nil }
	if _, state := (Quiet{CPU: 10, IO: 2, Limit: time.Millisecond}).settle(context.Background(), busy); state != "cpu 90.0% io 90.0% (not quiet)" {
		t.Errorf("busy machine: state %q", state)
	}
	// Without /proc/pressure there is nothing to wait for.
	none := func(string) (float64, error) { return 0, os.ErrNotExist }
	if waited, state := q.settle(context.Background(), none); waited != 0 || state != "no pressure information" {
		t.Errorf("no pressure: %v %q", waited, state)
	}
}

func TestInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if !inUse(port) {
		t.Errorf("port %d listened on, but not in use?", port)
	}
	l.Close()
	if inUse(port) {
		t.Errorf("port %d closed, but still in use?", port)
	}
}
