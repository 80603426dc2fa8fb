package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Quiet is how calm the machine must be before a measurement starts: the share of the
// last 10 seconds in which some task waited for a CPU, or for I/O, as Linux's pressure
// stall information (/proc/pressure) reports it. The previous measurement's work lingers
// after it ends (the kernel discards the blocks of deleted files, writes back dirty
// pages), and whichever MTA is measured next would pay for it.
type Quiet struct {
	CPU, IO float64 // percent, "some" avg10
	Limit   time.Duration
}

// DefaultQuiet waits at most a minute for under 10% CPU and 2% I/O pressure.
var DefaultQuiet = Quiet{CPU: 10, IO: 2, Limit: time.Minute}

// pressure is the "some avg10" figure of a /proc/pressure file's text.
func pressure(text string) (float64, error) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "some" {
			continue
		}
		for _, kv := range f[1:] {
			if v, ok := strings.CutPrefix(kv, "avg10="); ok {
				return strconv.ParseFloat(v, 64)
			}
		}
	}
	return 0, fmt.Errorf("no \"some avg10=\" in %q", text)
}

// readPressure reads /proc/pressure/<what>.
func readPressure(what string) (float64, error) {
	b, err := os.ReadFile("/proc/pressure/" + what)
	if err != nil {
		return 0, err
	}
	return pressure(string(b))
}

// settle waits until the machine is as quiet as q asks, polling every second, for at
// most q.Limit. It returns how long it waited and the last pressures read, as text for
// the report; on a kernel without pressure information it does not wait.
func (q Quiet) settle(ctx context.Context, read func(string) (float64, error)) (time.Duration, string) {
	start := time.Now()
	for {
		cpu, err1 := read("cpu")
		io, err2 := read("io")
		if err1 != nil || err2 != nil {
			return 0, "no pressure information"
		}
		state := fmt.Sprintf("cpu %.1f%% io %.1f%%", cpu, io)
		waited := time.Since(start)
		if cpu <= q.CPU && io <= q.IO {
			return waited, state
		}
		if waited >= q.Limit {
			return waited, state + " (not quiet)"
		}
		select {
		case <-ctx.Done():
			return waited, state
		case <-time.After(time.Second):
		}
	}
}
