package groupsync

import (
	"errors"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// startService serves a Syncer of dir on a socket in a temporary directory, with
// syncfs replaced by fake; it returns the socket's path and a stop function.
func startService(t *testing.T, dir string, fake func(int) error) (*Syncer, string, func()) {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.syncfs = fake
	sock := filepath.Join(t.TempDir(), "sync")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l, 4) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			l.Close()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
			s.Close()
		})
	}
	t.Cleanup(stop)
	return s, sock, stop
}

// openClient opens a Syncer via sock whose own syncfs is counted in own.
func openClient(t *testing.T, dir, sock string, own *atomic.Int64) *Syncer {
	t.Helper()
	c, err := OpenVia(dir, sock)
	if err != nil {
		t.Fatal(err)
	}
	c.syncfs = func(int) error { own.Add(1); return nil }
	t.Cleanup(func() { c.Close() })
	return c
}

// A client on the service's file system is synced by the service's syncfs, not its own.
func TestServiceSyncsForClient(t *testing.T) {
	dir := t.TempDir()
	var served, own atomic.Int64
	_, sock, _ := startService(t, dir, func(int) error { served.Add(1); return nil })
	c := openClient(t, dir, sock, &own)
	for i := 0; i < 3; i++ {
		if err := c.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if served.Load() != 3 || own.Load() != 0 {
		t.Fatalf("service syncfs %d, own %d; want 3 and 0", served.Load(), own.Load())
	}
}

// A request that arrives while the service's syncfs is running is answered only after
// a syncfs that started after it: the running one may have missed the client's writes.
func TestServiceRequestWaitsForLaterSyncfs(t *testing.T) {
	dir := t.TempDir()
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	var served, own atomic.Int64
	srv, sock, _ := startService(t, dir, func(int) error {
		served.Add(1)
		entered <- struct{}{}
		<-release
		return nil
	})
	first := make(chan error)
	go func() { first <- srv.Sync() }() // the service's own caller (a message)
	<-entered
	c := openClient(t, dir, sock, &own)
	second := make(chan error)
	go func() { second <- c.Sync() }()
	// Wait until the client's request is queued behind the running syncfs.
	for {
		srv.mu.Lock()
		n := srv.waiting
		srv.mu.Unlock()
		if n > 0 {
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
		t.Fatalf("client answered (%v) by a syncfs that started before its request", err)
	case <-entered: // the round for the client
	}
	release <- struct{}{}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if served.Load() != 2 || own.Load() != 0 {
		t.Fatalf("service syncfs %d, own %d; want 2 and 0", served.Load(), own.Load())
	}
}

// A failed syncfs in the service fails the client's Sync: its writes may not be on
// disk, and a syncfs of its own would not report the error the service already took.
func TestServiceErrorReachesClient(t *testing.T) {
	dir := t.TempDir()
	var own atomic.Int64
	_, sock, _ := startService(t, dir, func(int) error { return syscall.EIO })
	c := openClient(t, dir, sock, &own)
	if err := c.Sync(); err == nil {
		t.Fatal("Sync succeeded after the service's syncfs failed")
	}
	if own.Load() != 0 {
		t.Fatalf("client ran %d syncfs of its own instead of reporting the failure", own.Load())
	}
}

// Without a service the client syncs by itself, and after a failed dial it does not
// try again for a while (no dial per Sync while the service is down).
func TestClientWithoutServiceSyncsItself(t *testing.T) {
	dir := t.TempDir()
	var own atomic.Int64
	c := openClient(t, dir, filepath.Join(t.TempDir(), "none"), &own)
	for i := 0; i < 3; i++ {
		if err := c.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if own.Load() != 3 {
		t.Fatalf("own syncfs %d, want 3", own.Load())
	}
	c.via.mu.Lock()
	retry := c.via.retry
	c.via.mu.Unlock()
	if !retry.After(time.Now()) {
		t.Fatal("no pause before the next dial after a failed one")
	}
}

// A client whose requests are pending when the service stops syncs by itself.
func TestClientFallsBackWhenServiceStops(t *testing.T) {
	dir := t.TempDir()
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	var own atomic.Int64
	_, sock, stop := startService(t, dir, func(int) error {
		entered <- struct{}{}
		<-release
		return nil
	})
	c := openClient(t, dir, sock, &own)
	res := make(chan error)
	go func() { res <- c.Sync() }()
	<-entered // the service's syncfs for the request is running
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	// The service closes the connection at once; its syncfs ends when released.
	select {
	case err := <-res:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client still waiting after the service closed its connection")
	}
	close(release)
	<-stopped
	if own.Load() != 1 {
		t.Fatalf("own syncfs %d, want 1", own.Load())
	}
}

// A service of another file system is not asked: its syncfs would not cover the
// client's files.
func TestClientIgnoresForeignService(t *testing.T) {
	dir := t.TempDir()
	var served, own atomic.Int64
	srv, sock, _ := startService(t, dir, func(int) error { served.Add(1); return nil })
	c := openClient(t, dir, sock, &own)
	c.via.dev++ // as if the client's files were elsewhere
	_ = srv
	for i := 0; i < 2; i++ {
		if err := c.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if served.Load() != 0 || own.Load() != 2 {
		t.Fatalf("service syncfs %d, own %d; want 0 and 2", served.Load(), own.Load())
	}
}

// Concurrent callers of one client, and several clients, share the service's rounds;
// each gets its own answer.
func TestServiceSharesRounds(t *testing.T) {
	dir := t.TempDir()
	var served, own atomic.Int64
	_, sock, _ := startService(t, dir, func(int) error {
		served.Add(1)
		time.Sleep(2 * time.Millisecond)
		return nil
	})
	var wg sync.WaitGroup
	var calls atomic.Int64
	for k := 0; k < 3; k++ {
		c := openClient(t, dir, sock, &own)
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < 10; j++ {
					if err := c.Sync(); err != nil {
						t.Error(err)
					}
					calls.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	if own.Load() != 0 {
		t.Fatalf("%d syncfs of the clients' own", own.Load())
	}
	if served.Load() >= calls.Load() {
		t.Fatalf("%d syncfs for %d calls: no sharing", served.Load(), calls.Load())
	}
}

// A connection past the service's limit is closed; its client syncs by itself.
func TestServiceLimitsConnections(t *testing.T) {
	dir := t.TempDir()
	var served, own atomic.Int64
	_, sock, _ := startService(t, dir, func(int) error { served.Add(1); return nil })
	var cs []*Syncer
	for i := 0; i < 5; i++ { // the limit is 4
		c := openClient(t, dir, sock, &own)
		if err := c.Sync(); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	if served.Load() != 4 || own.Load() != 1 {
		t.Fatalf("service syncfs %d, own %d; want 4 and 1", served.Load(), own.Load())
	}
}

// Anything but a request ends the connection.
func TestServiceDropsGarbage(t *testing.T) {
	dir := t.TempDir()
	var served atomic.Int64
	_, sock, _ := startService(t, dir, func(int) error { served.Add(1); return nil })
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	g := make([]byte, 8)
	if _, err := conn.Read(g); err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("GET / HTTP/1.0\r\n"))
	var b [1]byte
	if _, err := conn.Read(b[:]); err == nil || errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("read after garbage: %v, want end of file", err)
	}
	if served.Load() != 0 {
		t.Fatalf("%d syncfs for garbage", served.Load())
	}
}
