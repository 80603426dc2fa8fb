package maildir

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/notqmail/notqmail/src/groupsync"
)

// Concurrent deliveries through one GroupSync into several maildirs on one file
// system all arrive complete, share one syncer, and leave tmp/ empty.
func TestDeliverGroupSync(t *testing.T) {
	root := t.TempDir()
	var gs GroupSync
	defer gs.Close()
	var mu sync.Mutex
	var opened []uint64
	gs.opened = func(dev uint64) { mu.Lock(); opened = append(opened, dev); mu.Unlock() }
	var mds []string
	for i := range 3 {
		mds = append(mds, mkmaildir(t, filepath.Join(root, fmt.Sprint("Maildir", i))))
	}
	const n = 30
	names := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf("Subject: %d\n\n%s\n", i, strings.Repeat("x", i*1000))
			names[i], errs[i] = DeliverSync(mds[i%len(mds)], []byte("Delivered-To: joe@example.org\n"), strings.NewReader(body), &gs)
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("delivery %d: %v", i, errs[i])
		}
		got, err := os.ReadFile(filepath.Join(mds[i%len(mds)], "new", names[i]))
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("Delivered-To: joe@example.org\nSubject: %d\n\n%s\n", i, strings.Repeat("x", i*1000))
		if string(got) != want {
			t.Errorf("delivery %d: content %.60q, want %.60q", i, got, want)
		}
	}
	for _, md := range mds {
		if left := entries(t, filepath.Join(md, "tmp")); len(left) != 0 {
			t.Errorf("%s/tmp holds %v", md, left)
		}
		if got := entries(t, filepath.Join(md, "new")); len(got) != n/len(mds) {
			t.Errorf("%s/new holds %d files, want %d", md, len(got), n/len(mds))
		}
	}
	if len(opened) != 1 {
		t.Errorf("opened %d syncers for one file system, want 1", len(opened))
	}
	if len(gs.syncers) != 1 {
		t.Errorf("GroupSync keeps %d syncers, want 1", len(gs.syncers))
	}
}

// A GroupSync full of file systems falls back to fsyncs: the delivery still works.
func TestDeliverGroupSyncBounded(t *testing.T) {
	md := mkmaildir(t, filepath.Join(t.TempDir(), "Maildir"))
	var gs GroupSync
	defer gs.Close()
	gs.syncers = make(map[uint64]*groupsync.Syncer)
	for i := range maxFileSystems {
		gs.syncers[^uint64(i)] = nil // devices that do not exist
	}
	if sync := gs.syncer(filepath.Join(md, "new")); sync != nil {
		t.Fatal("a GroupSync at its bound opened another syncer")
	}
	name, err := DeliverSync(md, nil, strings.NewReader("Subject: x\n\nbody\n"), &gs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(md, "new", name)); err != nil {
		t.Fatal(err)
	}
	for i := range maxFileSystems {
		delete(gs.syncers, ^uint64(i))
	}
}

// A maildir that cannot be reached is a NoMaildirError with a GroupSync too, and
// opens no syncer.
func TestDeliverGroupSyncNoMaildir(t *testing.T) {
	var gs GroupSync
	defer gs.Close()
	_, err := DeliverSync(filepath.Join(t.TempDir(), "nothing"), nil, strings.NewReader("x\n"), &gs)
	var nm *NoMaildirError
	if !errors.As(err, &nm) {
		t.Fatalf("got %v, want a NoMaildirError", err)
	}
	if len(gs.syncers) != 0 {
		t.Errorf("opened %d syncers", len(gs.syncers))
	}
}

// BenchmarkDeliver4KGroupSync delivers 4 KiB messages from 10 goroutines, as a
// qmail-local worker does with ten concurrent deliveries; compare
// BenchmarkDeliver4KParallelFsync.
func BenchmarkDeliver4KGroupSync(b *testing.B) {
	var gs GroupSync
	defer gs.Close()
	benchParallel(b, &gs)
}

// BenchmarkDeliver4KParallelFsync is BenchmarkDeliver4KGroupSync with fsyncs.
func BenchmarkDeliver4KParallelFsync(b *testing.B) { benchParallel(b, nil) }

func benchParallel(b *testing.B, gs *GroupSync) {
	dir := filepath.Join(b.TempDir(), "Maildir")
	if err := Make(dir); err != nil {
		b.Fatal(err)
	}
	head := []byte("Return-Path: <bob@example.org>\nDelivered-To: alice@example.org\n")
	msg := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 64)
	b.SetBytes(int64(len(msg)))
	b.SetParallelism(5) // 10 goroutines on 2 CPUs
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := DeliverSync(dir, head, bytes.NewReader(msg), gs); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
}
