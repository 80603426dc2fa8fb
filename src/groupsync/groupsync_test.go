package groupsync

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// A caller's Sync is served by a syncfs that started after the call: a syncfs
// already running when it arrives does not count.
func TestSyncStartsAfterCall(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var calls atomic.Int64
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	s.syncfs = func(int) error {
		calls.Add(1)
		entered <- struct{}{}
		<-release
		return nil
	}
	first := make(chan error)
	go func() { first <- s.Sync() }()
	<-entered // the first syncfs is running
	second := make(chan error)
	go func() { second <- s.Sync() }()
	// Wait until the second caller is queued behind the running syncfs.
	for {
		s.mu.Lock()
		queued := s.running && s.started == 1
		s.mu.Unlock()
		if queued {
			break
		}
		time.Sleep(time.Millisecond)
	}
	release <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-second:
		t.Fatalf("second caller returned (%v) on a syncfs that started before it", err)
	case <-entered: // its own round started
	}
	release <- struct{}{}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d syncfs calls, want 2", n)
	}
}

// Callers waiting together share one syncfs.
func TestWaitersShareOneSync(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var calls atomic.Int64
	gate := make(chan struct{})
	s.syncfs = func(int) error {
		if calls.Add(1) == 1 {
			<-gate
		}
		return nil
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.Sync() }()
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	const n = 20
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Sync(); err != nil {
				t.Error(err)
			}
		}()
	}
	for {
		s.mu.Lock()
		w := s.waiting
		s.mu.Unlock()
		if w == n {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	if c := calls.Load(); c != 2 {
		t.Fatalf("%d syncfs calls for %d waiters behind one running call, want 2", c, n)
	}
}

// A failed syncfs fails every caller it was meant to serve.
func TestErrorReachesTheGroup(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	boom := errors.New("EIO")
	s.syncfs = func(int) error { return boom }
	if err := s.Sync(); !errors.Is(err, boom) {
		t.Fatalf("Sync = %v, want %v", err, boom)
	}
	s.syncfs = func(int) error { return nil }
	if err := s.Sync(); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// gatedSyncer returns a Syncer whose syncfs calls each signal entered, then wait for
// their result on release.
func gatedSyncer(t *testing.T) (s *Syncer, entered chan struct{}, release chan error) {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	entered = make(chan struct{}, 10)
	release = make(chan error)
	s.syncfs = func(int) error {
		entered <- struct{}{}
		return <-release
	}
	return s, entered, release
}

// A syncfs that was running when a caller came, and failed, fails that caller too,
// although the syncfs started for it succeeds: the running one may have taken the
// writeback error of the caller's data, which the kernel reports only once.
func TestErrorOfOverlappingSyncReachesCaller(t *testing.T) {
	s, entered, release := gatedSyncer(t)
	first := make(chan error)
	go func() { first <- s.Sync() }()
	<-entered
	second := make(chan error)
	go func() { second <- s.Sync() }()
	for {
		s.mu.Lock()
		n := s.waiting
		s.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	release <- syscall.EIO
	if err := <-first; !errors.Is(err, syscall.EIO) {
		t.Fatalf("first caller: %v, want EIO", err)
	}
	<-entered
	release <- nil
	if err := <-second; !errors.Is(err, syscall.EIO) {
		t.Fatalf("second caller: %v, want the EIO of the syncfs it overlapped", err)
	}
	// A caller that overlapped nothing gets its own syncfs's success.
	go func() { <-entered; release <- nil }()
	if err := s.Sync(); err != nil {
		t.Fatalf("later caller: %v", err)
	}
}

// The real syncfs works on the file system of the directory.
func TestRealSyncfs(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Sync(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func BenchmarkSyncParallel(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Sync(); err != nil {
				b.Error(err)
			}
		}
	})
}

// A syncfs that another caller ran, and that failed, between a caller's mark and its
// SyncSince fails the caller, although the syncfs run for it succeeds: the failed
// one may have taken the writeback error of the caller's data. Without the mark the
// caller could not know.
func TestErrorBetweenMarkAndSyncReachesCaller(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := s.Mark()
	// The caller writes; meanwhile another caller's syncfs fails.
	s.syncfs = func(int) error { return syscall.EIO }
	if err := s.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("other caller: %v, want EIO", err)
	}
	s.syncfs = func(int) error { return nil }
	if err := s.SyncSince(m); !errors.Is(err, syscall.EIO) {
		t.Fatalf("SyncSince(mark before the failure) = %v, want EIO", err)
	}
	if err := s.FailedSince(m); !errors.Is(err, syscall.EIO) {
		t.Fatalf("FailedSince(mark before the failure) = %v, want EIO", err)
	}
	// A mark taken after the failure is not concerned by it.
	later := s.Mark()
	if err := s.SyncSince(later); err != nil {
		t.Fatalf("SyncSince(mark after the failure) = %v", err)
	}
	if err := s.FailedSince(later); err != nil {
		t.Fatalf("FailedSince(mark after the failure) = %v", err)
	}
}

// A mark taken while a syncfs runs counts that syncfs: it may still write back what
// is written after the mark.
func TestMarkDuringSyncCountsIt(t *testing.T) {
	s, entered, release := gatedSyncer(t)
	first := make(chan error)
	go func() { first <- s.Sync() }()
	<-entered
	m := s.Mark()
	release <- syscall.EIO
	if err := <-first; !errors.Is(err, syscall.EIO) {
		t.Fatalf("first caller: %v, want EIO", err)
	}
	go func() { <-entered; release <- nil }()
	if err := s.SyncSince(m); !errors.Is(err, syscall.EIO) {
		t.Fatalf("SyncSince(mark taken during the failed syncfs) = %v, want EIO", err)
	}
}
