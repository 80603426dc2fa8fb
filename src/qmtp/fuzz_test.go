package qmtp

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/queueclient"
)

type rw struct {
	io.Reader
	io.Writer
}

// checkResponses fails unless out is a series of well-formed responses.
func checkResponses(t *testing.T, out []byte, most int) {
	r := bufio.NewReader(bytes.NewReader(out))
	for n := 0; ; n++ {
		b, err := Read(r, maxResponse)
		if err == io.EOF {
			return
		}
		if err != nil || len(b) == 0 || bytes.IndexByte([]byte("KZD"), b[0]) < 0 {
			t.Fatalf("bad response in %q: %v", out, err)
		}
		if n >= most {
			t.Fatalf("more responses than recipients could ask for: %q", out)
		}
	}
}

// The queue cannot start (its home is missing), so the fuzzer exercises the
// protocol without running qmail-queue.
func fuzzConfig(t *testing.T) ServerConfig {
	return ServerConfig{Control: control.Open(t.TempDir()), Queue: queueclient.Config{Home: "/nonexistent/qmail"}}
}

func FuzzQMTPServer(f *testing.F) {
	pkg := func(msg, sender string, rcpts ...string) []byte {
		var list []byte
		for _, r := range rcpts {
			list = AppendString(list, r)
		}
		b := AppendString(nil, "\n"+msg)
		b = AppendString(b, sender)
		return Append(b, list)
	}
	f.Add(pkg("Subject: x\n\nbody\n", "a@b", "c@d"))
	f.Add(append(pkg("x", "", "a", "b"), pkg("y", "s", "r")...))
	f.Add([]byte("3:\nab,0:,0:,"))
	f.Add([]byte("5:\rab\r\n,1:s,4:1:r,,"))
	f.Add([]byte("99999999999999999999:"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		ServeQMTP(rw{bytes.NewReader(in), &out}, fuzzConfig(t))
		checkResponses(t, out.Bytes(), len(in)+1)
	})
}

func FuzzQMQPServer(f *testing.F) {
	inner := AppendString(nil, "Subject: x\n\nbody\n")
	inner = AppendString(inner, "a@b")
	inner = AppendString(inner, "c@d")
	f.Add(Append(nil, inner))
	f.Add([]byte("10:50:hello,1:a,1:b,,"))
	f.Add([]byte("0:,"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		ServeQMQP(rw{bytes.NewReader(in), &out}, fuzzConfig(t))
		checkResponses(t, out.Bytes(), 1)
	})
}
