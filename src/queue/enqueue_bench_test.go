package queue

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkEnqueue4K queues 4 KiB messages the way qmail-queue does, fsyncs
// included: the in-process cost of qmail-queue without its exec.
func BenchmarkEnqueue4K(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "queue")
	if err := Create(dir, DefaultSplit, Owners{Qmailq: os.Geteuid(), Qmails: os.Geteuid(), Qmailr: os.Geteuid(), Qmail: os.Getegid()}); err != nil {
		b.Fatal(err)
	}
	q := Open(dir)
	msg := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 64)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	for i := 0; b.Loop(); i++ {
		c := testCaller
		c.PID, c.Time = i+1, time.Now()
		if err := Enqueue(q, bytes.NewReader(msg), strings.NewReader(testEnv), c); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
}

// cpuTime is this process's user and system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
