package send

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/queue"
)

// FuzzRewrite: any recipient comes out as an address with an @, and percenthack never
// loops.
func FuzzRewrite(f *testing.F) {
	r := &Rewriter{
		EnvNoAtHost: "example.org",
		Locals:      map[string]bool{"example.org": true},
		PercentHack: map[string]bool{"gw.example": true, "": true},
		VirtualDoms: map[string]string{"v.example": "vu", ".w.example": "wu", "x@y": ""},
	}
	for _, s := range []string{"a", "a@b", "a%b@gw.example", "%%@gw.example", "@", "", "x@v.example", "a@b.w.example", "a%@"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, recip string) {
		out, _ := r.Rewrite(recip)
		if !strings.Contains(out, "@") {
			t.Fatalf("Rewrite(%q) = %q", recip, out)
		}
		r.StripVirtualPrepend(out)
		DeliverySender(recip, out)
	})
}

// FuzzReports feeds arbitrary bytes from a "spawner" to qmail-send's report parser:
// no panic, and the slot accounting stays consistent.
func FuzzReports(f *testing.F) {
	f.Add([]byte("\x00Kok\x00"))
	f.Add([]byte("\x01Zlater\x00\x00Dno\x00"))
	f.Add([]byte("\x00\x00\x00\x00"))
	f.Add([]byte("\x07K\x00"))
	q := queue.Open(f.TempDir())
	os.MkdirAll(filepath.Join(q.Dir, "bounce"), 0700)
	f.Fuzz(func(t *testing.T, data []byte) {
		os.Remove(q.Path("bounce", 77))
		d := &Daemon{Queue: q, Config: &Config{Rewriter: &Rewriter{}}}
		d.concurrency = [nchan]int{2, 2}
		d.jobs = make([]job, 4)
		for c := 0; c < nchan; c++ {
			d.alive[c] = true
			d.dels[c] = make([]delivery, 2)
		}
		// Two deliveries under way on the local channel, one job.
		d.jobs[0] = job{refs: 3, id: 77, channel: Local}
		d.dels[Local][0] = delivery{used: true, job: 0, delID: 1, recip: "a@b"}
		d.dels[Local][1] = delivery{used: true, job: 0, delID: 2, mpos: 5, recip: "c@d"}
		d.used[Local] = 2
		d.delReport(Local, data)
		used := 0
		for _, del := range d.dels[Local] {
			if del.used {
				used++
			}
		}
		if used != d.used[Local] || d.jobs[0].refs != 1+used {
			t.Fatalf("used %d/%d refs %d", used, d.used[Local], d.jobs[0].refs)
		}
	})
}
