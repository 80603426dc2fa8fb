package clean

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/groupsync"
	"github.com/notqmail/notqmail/src/queue"
)

// BenchmarkCycle4K is a message's life as far as qmail-queued and qmail-clean see it,
// in steady state: a 4 KiB message queued from spare/q (as qmail-queued does, with a
// group sync), its todo/ entry and envelope recycled as after preprocessing
// ("todo/<id>"), then the envelope and message recycled as after delivery
// ("foop/<id>"), with a Flush every 100 messages as Serve does every second. It runs
// in the queue directory with relative paths, as both daemons do.
func BenchmarkCycle4K(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "queue")
	me := os.Geteuid()
	if err := queue.Create(dir, queue.DefaultSplit, queue.Owners{Qmailq: me, Qmails: me, Qmailr: me, Qmail: os.Getegid()}); err != nil {
		b.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		b.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		b.Fatal(err)
	}
	defer os.Chdir(wd)
	q := queue.Open(".")
	msg := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", 64)
	env := "Fbob@example.org\x00Talice@example.org\x00\x00"
	rec := &queue.Recycler{Q: q}
	rec.TopUp(200, 200)
	o := queue.Options{PidName: "bench", Spares: queue.NewSpares(q), Sync: syncer{}}
	cpu0 := cpuTime()
	for i := 0; b.Loop(); i++ {
		c := queue.Caller{UID: 7, PID: 4242, Invoked: "by uid 7", Time: time.Now()}
		if err := queue.EnqueueWith(q, strings.NewReader(msg), strings.NewReader(env), c, o); err != nil {
			b.Fatal(err)
		}
		ids, _ := q.Todo()
		for _, id := range ids {
			n := strconv.FormatUint(id, 10)
			if a := handle(q, rec, "todo/"+n); a != '+' {
				b.Fatalf("todo/%s: %c", n, a)
			}
			if a := handle(q, rec, "foop/"+n); a != '+' {
				b.Fatalf("foop/%s: %c", n, a)
			}
		}
		if i%100 == 99 {
			rec.Flush()
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

// syncer stands for qmail-queued's group commit without flushing the disk: the
// benchmark counts the queue's own work.
type syncer struct{}

func (syncer) Mark() groupsync.Mark           { return 0 }
func (syncer) SyncSince(groupsync.Mark) error { return nil }
