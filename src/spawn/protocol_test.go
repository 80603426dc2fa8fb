package spawn

import (
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// socketpair returns both ends of a SOCK_SEQPACKET socketpair as UnixConns.
func socketpair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "sock")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c.(*net.UnixConn)
	}
	return conns[0], conns[1]
}

// TestServeWorkerProtocol drives ServeWorker by hand: a request gets its arguments,
// message and output descriptors through, the reply carries the id and exit code, and
// a request without descriptors ends the worker with an error.
func TestServeWorkerProtocol(t *testing.T) {
	lspawn, worker := socketpair(t)
	defer lspawn.Close()
	served := make(chan error, 1)
	go func() {
		served <- ServeWorker(worker, func(args []string, msg, out *os.File) int {
			b, _ := io.ReadAll(msg)
			io.WriteString(out, strings.Join(args, "|")+" read "+string(b))
			return 42
		})
		worker.Close()
	}()

	mess, err := os.CreateTemp(t.TempDir(), "mess")
	if err != nil {
		t.Fatal(err)
	}
	defer mess.Close()
	mess.WriteString("MSG")
	mess.Seek(0, 0)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"u", "/h", "l", "-", "e", "d", "s@x", "./Maildir/"}
	req, ok := encodeRequest(7, args)
	if !ok {
		t.Fatal("encodeRequest refused")
	}
	if _, _, err := lspawn.WriteMsgUnix(req, syscall.UnixRights(int(mess.Fd()), int(pw.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	out, _ := io.ReadAll(pr) // EOF: the worker closed its copy before replying
	if string(out) != "u|/h|l|-|e|d|s@x|./Maildir/ read MSG" {
		t.Errorf("output %q", out)
	}
	buf := make([]byte, 64)
	n, err := lspawn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if id, code, ok := decodeReply(buf[:n]); !ok || id != 7 || code != 42 {
		t.Errorf("reply %v %v %v", id, code, ok)
	}

	// No descriptors: a broken request.
	if _, err := lspawn.Write(req); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err == nil {
		t.Error("ServeWorker accepted a request without descriptors")
	}
}

func TestEncodeRequestLimits(t *testing.T) {
	args := []string{"u", "/h", "l", "", "", "d", "s", "./Maildir/"}
	if _, ok := encodeRequest(1, args[:7]); ok {
		t.Error("7 arguments encoded")
	}
	bad := append([]string(nil), args...)
	bad[6] = "a\x00b"
	if _, ok := encodeRequest(1, bad); ok {
		t.Error("an argument with NUL encoded")
	}
	long := append([]string(nil), args...)
	long[6] = strings.Repeat("x", requestMax)
	if _, ok := encodeRequest(1, long); ok {
		t.Error("an oversized request encoded")
	}
	b, ok := encodeRequest(99, args)
	if !ok {
		t.Fatal("refused")
	}
	id, got, ok := decodeRequest(b)
	if !ok || id != 99 || strings.Join(got, "|") != strings.Join(args, "|") {
		t.Errorf("round trip: %v %q %v", id, got, ok)
	}
}

// FuzzDecodeRequest: any packet decodes to exactly 8 arguments or is refused, and
// never panics.
func FuzzDecodeRequest(f *testing.F) {
	b, _ := encodeRequest(3, []string{"a", "b", "c", "d", "e", "f", "g", "h"})
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte("12345678\x00"))
	f.Fuzz(func(t *testing.T, p []byte) {
		id, args, ok := decodeRequest(p)
		if !ok || len(p) > requestMax {
			return
		}
		if len(args) != nargs {
			t.Fatalf("%d arguments", len(args))
		}
		again, ok := encodeRequest(id, args)
		if !ok || string(again) != string(p) {
			t.Fatalf("round trip %q -> %q", p, again)
		}
	})
}
