package bench

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Markdown renders the results as BENCHMARKS.md.
func Markdown(r *Results) string {
	var b strings.Builder
	m := r.Machine
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	p("# Benchmarks: notqmail against Postfix\n\n")
	p("Written by `go run mage.go bench` (package `packaging/bench`) from one run; not edited by hand.\n")
	p("The machine-readable results are in `bench/results.json`.\n\n")
	if r.Quick {
		p("**Quick mode: tiny counts to test the harness, not a benchmark.**\n\n")
	}
	dirty := ""
	if m.Dirty {
		dirty = " (with uncommitted changes under src/)"
	}
	p("| | |\n|---|---|\n")
	p("| commit | `%s`%s |\n", m.Commit, dirty)
	p("| run | %s to %s |\n", m.Start, m.End)
	p("| machine | %d CPUs, %s, %d MiB RAM, Linux %s |\n", m.CPUs, m.Model, m.MemoryMiB, m.Kernel)
	p("| load average (1, 5, 15 min) | %s at the start, %s at the end |\n", m.LoadStart, m.LoadEnd)
	p("| Postfix | %s (Debian package) |\n", m.Postfix)
	p("| Go | %s |\n", m.Go)
	if m.FS != nil {
		p("| queues and maildirs on | %s |\n", m.FS)
	}
	p("\n")
	p("The machine may be shared with other work, so the load average is given for every\n")
	p("measurement below (at its end). Before each measurement the run waits (up to a minute) until\n")
	p("the kernel's pressure figures show the machine quiet (CPU under 10%%, I/O under 2%% of the last\n")
	p("10 s), since the previous measurement's file deletions are still being discarded for a while;\n")
	p("the load column gives the pressure at the start. Both MTAs ran in turn, alternately, in the\n")
	p("same run, so both saw the same conditions on average; compare ratios more than absolute figures.\n\n")

	if acc := acceptance(r); acc != "" {
		p("## Issue 10's acceptance targets, against this run\n\n%s\n", acc)
	}

	p("## Method\n\n")
	p("- Every measurement uses a fresh instance on 127.0.0.1: notqmail in a sandbox home (every\n")
	p("  program as one unprivileged user), Postfix as a private instance (own config_directory,\n")
	p("  queue_directory, data_directory; Debian's binaries and compiled-in defaults, fsync on;\n")
	p("  chroot off, smtpd on a loopback port; the recipient a `virtual` Maildir). Start-up is not timed:\n")
	p("  in scenarios 1-3 the clock starts %.0f s after the instance was started, so that they measure a\n", WarmUp.Seconds())
	p("  running server taking a burst of mail (notqmail fills its pools of spare queue files in its\n")
	p("  first seconds, see qmail-clean(8); Postfix's master starts its services when first needed).\n")
	p("- Messages are 4 KiB. SMTP load comes from Postfix's `smtp-source` (one message per connection).\n")
	p("- Both MTAs deliver up to %d messages at once to the local Maildir (notqmail:\n", LocalConcurrency)
	p("  control/concurrencylocal; Postfix: virtual_destination_concurrency_limit, whose default is\n")
	p("  that number) and up to 20 to smtp-sink (concurrencyremote; smtp_destination_concurrency_limit).\n")
	p("  qmail's own default concurrencylocal is 10.\n")
	p("- *Accept* is messages/s while the client was sending; *end-to-end* is messages/s from the first\n")
	p("  connection until the last message file was in `new/` (scenario 4: until the queue was empty).\n")
	p("- *CPU ms/msg*: each instance runs in its own cgroup (v1 cpuacct), entered by a wrapper before\n")
	p("  its programs are exec'ed, so every descendant process counts (qmail-queue, qmail-local, Postfix's\n")
	p("  smtpd, cleanup, virtual, ...); `cpuacct.usage_user + usage_sys` over the measurement, divided by\n")
	p("  the messages. The load generators are outside the cgroup, except in scenario 3, where the\n")
	p("  shell loop running sendmail is inside it for both MTAs. -1 means no cgroup was available.\n")
	p("- *Disk KiB/msg*, *writes/msg* and *flushes/msg*: the block device holding both MTAs' files,\n")
	p("  from its counters in /sys (KiB written, write requests completed after the kernel merged\n")
	p("  adjacent blocks, cache flushes completed) over the measurement, per message: what the\n")
	p("  fsyncs, syncfs calls and journal commits cost the disk. A device has a ceiling of write\n")
	p("  requests a second as well as of bytes, and small metadata writes meet the first long\n")
	p("  before the second. The whole device counts, so anything else writing to it then counts\n")
	p("  too; - means no counters.\n")
	p("- Both MTAs keep their queues and maildirs in the run's scratch directory, on the file\n")
	p("  system named above; set TMPDIR to run on another. The figures depend on it: on ext4\n")
	p("  without a journal an fsync writes only the file's own blocks, while a syncfs writes\n")
	p("  every dirty metadata block; with a journal, either one commits the whole running\n")
	p("  transaction.\n")
	p("- *Peak RSS*: /proc sampled every 100 ms, the largest sum of VmRSS over the instance's\n")
	p("  processes; *qmgr RSS* is the queue manager's VmHWM (qmail-send, Postfix's qmgr).\n")
	p("- Scenarios 4 and 5 first queue the messages over SMTP (smtp-source, 20 sessions) with only the\n")
	p("  receiving side running (notqmail: qmail-smtpd without qmail-start, since qmail-send reads\n")
	p("  concurrencylocal only at start; Postfix: master.cf without qmgr), stop it, then start the\n")
	p("  delivery side and time from its start until the last message is delivered.\n")
	p("- Scenario 3 runs sendmail 2,000 times one after another with the MTA running.\n\n")

	p("## Scenarios 1-4\n\n")
	p("Ratio: notqmail's end-to-end rate over Postfix's in the same scenario and concurrency (above 1: notqmail faster);\n")
	p("CPU ratio: notqmail's CPU per message over Postfix's (below 1: notqmail cheaper).\n\n")
	p("| scenario | MTA | sessions | messages | accept/s | end-to-end/s | CPU ms/msg | disk KiB/msg | writes/msg | flushes/msg | peak RSS | qmgr RSS | ratio | CPU ratio | load |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	loads := map[string]string{}
	for _, l := range m.Loads {
		if k, v, ok := strings.Cut(l, ": "); ok {
			loads[k] = v
		}
	}
	rows := append([]Measurement(nil), r.Measurements...)
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Scenario[:1] != b.Scenario[:1] {
			return a.Scenario < b.Scenario
		}
		if a.Sessions != b.Sessions {
			return a.Sessions < b.Sessions
		}
		return a.Scenario < b.Scenario
	})
	for _, x := range rows {
		if x.Windows != nil || x.Scenario == "5 scale" {
			continue
		}
		kib, writes, flushes := diskFigures(x)
		ratio, cpuRatio := "", ""
		if pf := postfixFor(r, x); pf != nil && x.MTA != "Postfix" && x.Error == "" && pf.Error == "" {
			ratio = fmt.Sprintf("%.2f×", x.E2E/pf.E2E)
			if x.CPUms > 0 && pf.CPUms > 0 {
				cpuRatio = fmt.Sprintf("%.2f×", x.CPUms/pf.CPUms)
			}
		}
		if x.Error != "" {
			p("| %s | %s | %s | %d | error: %s | | | | | | | | | | |\n", x.Scenario, x.MTA, sessions(x.Sessions), x.Messages, oneLine(x.Error))
			continue
		}
		p("| %s | %s | %s | %d | %s | %.1f | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", x.Scenario, x.MTA, sessions(x.Sessions), x.Messages,
			rate(x.Accept), x.E2E, cpu(x.CPUms), kib, writes, flushes, mib(x.PeakRSS), mib(x.DaemonRS), ratio, cpuRatio,
			withSettled(loads[fmt.Sprintf("%s %s %d", x.Scenario, x.MTA, x.Sessions)], x.Settled))
	}
	p("\n")

	p("## Scenario 5: scale\n\n")
	for _, x := range r.Measurements {
		if x.Scenario != "5 scale" {
			continue
		}
		if x.Error != "" {
			p("- %s, %d messages: error: %s\n\n", x.MTA, x.Messages, oneLine(x.Error))
			continue
		}
		kib, writes, flushes := diskFigures(x)
		p("%s: %d messages queued while stopped, then delivered at %.1f/s overall; %s CPU ms/msg; %s disk KiB in %s write requests, and %s flushes per message; peak RSS %s, %s peak %s.\n\n",
			x.MTA, x.Messages, x.E2E, cpu(x.CPUms), kib, writes, flushes, mib(x.PeakRSS), daemonName(x.MTA), mib(x.DaemonRS))
		if x.Settled != "" {
			p("Pressure when it started: %s.\n\n", x.Settled)
		}
		p("| window (%d messages) | delivered/s | %s RSS at its end |\n|---:|---:|---:|\n", x.WindowSize, daemonName(x.MTA))
		for i, w := range x.Windows {
			rss := ""
			if i < len(x.DaemonRSS) {
				rss = mib(x.DaemonRSS[i])
			}
			p("| %d | %.1f | %s |\n", i+1, w, rss)
		}
		if len(x.Windows) > 1 {
			p("\nLast window over first: %.2f.\n", x.Windows[len(x.Windows)-1]/x.Windows[0])
		}
		p("\n")
	}

	if r.Pipeline != nil {
		pl := r.Pipeline
		p("## Scenario 6: the pipeline\n\n")
		p("`go run mage.go` (all packages, both architectures) in a fresh clone of `%s`: cold (empty Go\n", pl.Commit)
		p("build and mage caches; the module cache was warm) %.1f s, warm %.1f s.\n\n", pl.ColdS, pl.WarmS)
		if len(pl.Packages) > 0 {
			p("| package | bytes |\n|---|---:|\n")
			for _, k := range sortedKeys(pl.Packages) {
				p("| %s | %d |\n", k, pl.Packages[k])
			}
			p("\n")
		}
	}

	if r.Profile != nil {
		pr := r.Profile
		p("## Profile: notqmail, scenario 1 at 10 sessions\n\n")
		p("qmail-start and qmail-smtpd each ran under `perf record -F 999 -g`, which follows their\n")
		p("children (qmail-send, qmail-lspawn, qmail-local, qmail-clean, and qmail-queue under\n")
		p("qmail-smtpd). Run with perf attached: %s.\n\n", summary(pr.Run))
		if rows := commTable(pr, pr.Run.CPUms); rows != "" {
			p("CPU by program: perf samples of both recordings together; the last column is the program's share\n")
			p("of the samples times the CPU per message the cgroup measured in this run (perf's own\n")
			p("sample counts do not convert to time reliably in this VM).\n\n%s\n", rows)
		}
		if len(pr.Execs) > 0 {
			p("Process starts (a shell loop; CPU from wait4 of the loop, its own forks included):\n\n| command | runs | CPU ms/run | wall ms/run |\n|---|---:|---:|---:|\n")
			for _, e := range pr.Execs {
				p("| %s | %d | %.2f | %.2f |\n", e.What, e.Runs, e.CPUms, e.Wall)
			}
			p("\nThe in-process costs, without an exec, are the Go benchmarks: `go test -run X -bench . ./src/queue ./src/maildir ./src/smtpd`.\n\n")
		}
		for _, k := range sortedKeys(pr.Reports) {
			p("### %s\n\n```\n%s\n```\n\n", k, pr.Reports[k])
		}
	}
	if len(r.Notes) > 0 {
		p("## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", oneLine(n))
		}
		p("\n")
	}
	return b.String()
}

func sessions(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

func daemonName(mta string) string {
	if mta == "Postfix" {
		return "qmgr"
	}
	return "qmail-send"
}

func rate(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

func cpu(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v)
}

// diskFigures formats m's disk KiB, write requests and flushes per message, or "-"
// when the disk's counters were unknown (DiskKiB 0: a measurement always writes its
// messages), and "-" for the write requests of results from before they were
// measured. Zero flushes is a figure of its own: a delivery that syncs nothing.
func diskFigures(m Measurement) (kib, writes, flushes string) {
	if m.DiskKiB <= 0 {
		return "-", "-", "-"
	}
	writes = "-"
	if m.Writes > 0 {
		writes = fmt.Sprintf("%.1f", m.Writes)
	}
	return fmt.Sprintf("%.0f", m.DiskKiB), writes, fmt.Sprintf("%.2f", m.Flushes)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// postfixFor finds Postfix's measurement to compare x with: same scenario (tcpserver
// runs compare with scenario 1) and sessions.
func postfixFor(r *Results, x Measurement) *Measurement {
	scen := x.Scenario
	if scen == "2 smtp tcpserver" {
		scen = "1 smtp"
	}
	for i := range r.Measurements {
		y := &r.Measurements[i]
		if y.MTA == "Postfix" && y.Scenario == scen && y.Sessions == x.Sessions {
			return y
		}
	}
	return nil
}

// commTable sums the "by program" reports' sample counts per program.
func commTable(pr *Profile, cpuPerMsg float64) string {
	total := map[string]float64{}
	var all float64
	for k, rep := range pr.Reports {
		if !strings.HasSuffix(k, ", by program") {
			continue
		}
		for _, l := range strings.Split(rep, "\n") {
			// "  45.23%  1234  qmail-send"
			f := strings.Fields(l)
			if len(f) < 3 || !strings.HasSuffix(f[0], "%") {
				continue
			}
			n, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				continue
			}
			total[f[2]] += n
			all += n
		}
	}
	if all == 0 {
		return ""
	}
	type row struct {
		comm string
		s    float64
	}
	var rows []row
	for c, s := range total {
		rows = append(rows, row{c, s})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].s > rows[j].s })
	var b strings.Builder
	b.WriteString("| program | samples | share | CPU ms/msg |\n|---|---:|---:|---:|\n")
	for _, r := range rows {
		ms := "n/a"
		if cpuPerMsg > 0 {
			ms = fmt.Sprintf("%.2f", cpuPerMsg*r.s/all)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.1f%% | %s |\n", r.comm, r.s, 100*r.s/all, ms)
	}
	return b.String()
}

// acceptance checks the run against issue 10's targets.
func acceptance(r *Results) string {
	var b strings.Builder
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**not met**"
	}
	any := false
	for _, x := range r.Measurements {
		if x.MTA == "Postfix" || x.Error != "" || x.Scenario == "5 scale" {
			continue
		}
		pf := postfixFor(r, x)
		if pf == nil || pf.Error != "" {
			continue
		}
		any = true
		ratio := x.E2E / pf.E2E
		if x.Scenario == "1 smtp" && x.Sessions == 10 {
			fmt.Fprintf(&b, "- Scenario 1 at 10 sessions, end-to-end: notqmail %.1f/s, Postfix %.1f/s: %.2f× (target at least 1.5×): %s.\n",
				x.E2E, pf.E2E, ratio, verdict(ratio >= 1.5))
			if x.CPUms > 0 && pf.CPUms > 0 {
				fmt.Fprintf(&b, "- Scenario 1 at 10 sessions, CPU per message: notqmail %.2f ms, Postfix %.2f ms: %.2f× (target at most 1×): %s.\n",
					x.CPUms, pf.CPUms, x.CPUms/pf.CPUms, verdict(x.CPUms <= pf.CPUms))
			}
			continue
		}
		label := x.MTA
		if x.Sessions > 0 {
			label += " at " + sessionCount(x.Sessions)
		}
		fmt.Fprintf(&b, "- Scenario %s, %s: %.2f× Postfix's end-to-end rate (target at least 1×): %s.\n",
			x.Scenario, label, ratio, verdict(ratio >= 1))
	}
	var nq, pf *Measurement
	for i := range r.Measurements {
		x := &r.Measurements[i]
		if x.Scenario == "5 scale" && x.Error == "" {
			if x.MTA == "Postfix" {
				pf = x
			} else {
				nq = x
			}
		}
	}
	if nq != nil && len(nq.Windows) > 1 {
		any = true
		lo, hi := nq.Windows[0], nq.Windows[0]
		for _, w := range nq.Windows {
			lo, hi = min(lo, w), max(hi, w)
		}
		last := nq.Windows[len(nq.Windows)-1] / nq.Windows[0]
		size := fmt.Sprintf("%d messages", nq.Messages)
		if nq.Messages != 100000 {
			size += ", not the issue's 100,000"
		}
		fmt.Fprintf(&b, "- Scenario 5 (%s), flat: last window %.2f× the first, windows from %.1f/s to %.1f/s (target within 20%%): %s.\n",
			size, last, lo, hi, verdict(last >= 0.8 && last <= 1.2))
		if pf != nil {
			fmt.Fprintf(&b, "- Scenario 5, rate: notqmail %.1f/s, Postfix %.1f/s: %.2f× (target at least 1×): %s.\n", nq.E2E, pf.E2E, nq.E2E/pf.E2E, verdict(nq.E2E >= pf.E2E))
		}
	}
	if !any {
		return ""
	}
	return b.String()
}

// withSettled adds a measurement's starting pressure (Measurement.Settled) to its load.
func withSettled(load, settled string) string {
	if settled == "" {
		return load
	}
	return load + "; at start " + settled
}

// sessionCount is "1 session", "10 sessions".
func sessionCount(n int) string {
	if n == 1 {
		return "1 session"
	}
	return strconv.Itoa(n) + " sessions"
}
