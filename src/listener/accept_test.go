package listener

import (
	"bytes"
	"net"
	"os"
	"reflect"
	"syscall"
	"testing"
	"time"
)

// emfileListener fails Accept with EMFILE n times, then reports itself closed.
type emfileListener struct{ n int }

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.n == 0 {
		return nil, net.ErrClosed
	}
	l.n--
	return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}
func (l *emfileListener) Close() error   { return nil }
func (l *emfileListener) Addr() net.Addr { return &net.TCPAddr{} }

// TestAcceptBacksOff: out of descriptors, Accept fails at once for as long as the
// connection waits in the backlog; the listener must wait between attempts, more
// each time up to a second, rather than spin and fill the log.
func TestAcceptBacksOff(t *testing.T) {
	var slept []time.Duration
	old := sleep
	sleep = func(d time.Duration) { slept = append(slept, d) }
	defer func() { sleep = old }()
	var log bytes.Buffer
	if err := Serve(&emfileListener{n: 10}, Config{Log: &log, Handle: func(net.Conn, []EnvVar, string) {}}); err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	want := []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second}
	if !reflect.DeepEqual(slept, want) {
		t.Errorf("waited %v, want %v", slept, want)
	}
}
