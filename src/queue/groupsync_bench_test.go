package queue

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/groupsync"
)

// BenchmarkEnqueue4KConcurrent queues 4 KiB messages from 10 goroutines at once, as
// qmail-queued does for 10 clients, with each message fsyncing its own files
// ("fsync") and with group commit ("groupsync"). wall-ms/op is the elapsed time per
// message, cpu-ms/op this process's CPU per message.
func BenchmarkEnqueue4KConcurrent(b *testing.B) {
	const writers = 10
	for _, mode := range []string{"fsync", "groupsync"} {
		b.Run(mode, func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "queue")
			if err := Create(dir, DefaultSplit, Owners{Qmailq: os.Geteuid(), Qmails: os.Geteuid(), Qmailr: os.Geteuid(), Qmail: os.Getegid()}); err != nil {
				b.Fatal(err)
			}
			q := Open(dir)
			var o Options
			if mode == "groupsync" {
				s, err := groupsync.Open(dir)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				o.Sync = s
			}
			msg := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 64)
			b.SetBytes(int64(len(msg)))
			b.SetParallelism((writers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			var pid atomic.Int64
			cpu0, start := cpuTime(), time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c := testCaller
					c.PID, c.Time = int(pid.Add(1)), time.Now()
					opts := o
					opts.PidName = "bench." + strconv.Itoa(c.PID)
					if err := EnqueueWith(q, bytes.NewReader(msg), strings.NewReader(testEnv), c, opts); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(time.Since(start).Microseconds())/1e3/float64(b.N), "wall-ms/op")
		})
	}
}
