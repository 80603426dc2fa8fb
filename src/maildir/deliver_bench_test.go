package maildir

import (
	"bytes"
	"path/filepath"
	"syscall"
	"testing"
)

// BenchmarkDeliver4K delivers 4 KiB messages into one Maildir, fsyncs included: the
// in-process cost of a qmail-local Maildir delivery without its exec.
func BenchmarkDeliver4K(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "Maildir")
	if err := Make(dir); err != nil {
		b.Fatal(err)
	}
	head := []byte("Return-Path: <bob@example.org>\nDelivered-To: alice@example.org\n")
	msg := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 64)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := Deliver(dir, head, bytes.NewReader(msg)); err != nil {
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
