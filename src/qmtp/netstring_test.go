package qmtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestNetstringRoundTrip(t *testing.T) {
	for _, s := range []string{"", "a", "hello world!", strings.Repeat("x", 10000), "with,comma:and\x00nul"} {
		enc := AppendString(nil, s)
		got, err := Read(bufio.NewReader(bytes.NewReader(enc)), 1<<20)
		if err != nil || string(got) != s {
			t.Errorf("%q: got %q, %v", enc, got, err)
		}
	}
	if got := string(AppendString(nil, "hello world!")); got != "12:hello world!," {
		t.Errorf("encoding: %q", got)
	}
}

func TestNetstringMalformed(t *testing.T) {
	for _, c := range []struct {
		in    string
		max   int64
		proto bool // a ProtocolError, rather than an early end
	}{
		{"5:abc,", 100, false},                   // announced longer than sent: ends early
		{"2:abc,", 100, true},                    // shorter: no comma where one belongs
		{"3:abc", 100, false},                    // no comma at the end of input
		{"3:abc;", 100, true},                    // something else where the comma belongs
		{"101:", 100, true},                      // longer than allowed
		{"99999999999999999999:", 1 << 62, true}, // more digits than any length
		{"012:", 100, true},                      // leading zero
		{":abc,", 100, true},                     // no length
		{"-1:,", 100, true},                      // sign
		{"1a:x,", 100, true},                     // junk in the length
		{"12", 100, false},                       // length without colon at end of input
	} {
		_, err := Read(bufio.NewReader(strings.NewReader(c.in)), c.max)
		if err == nil {
			t.Errorf("%q: accepted", c.in)
			continue
		}
		if IsProtocolError(err) != c.proto {
			t.Errorf("%q: %v (protocol error: %v)", c.in, err, IsProtocolError(err))
		}
		if !c.proto && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%q: %v, want unexpected EOF", c.in, err)
		}
	}
	if _, err := Read(bufio.NewReader(strings.NewReader("")), 10); err != io.EOF {
		t.Errorf("empty input: %v, want io.EOF", err)
	}
}

func TestInnerNetstringCannotEscape(t *testing.T) {
	// An inner netstring claiming more than the outer one holds.
	l := &limitedByteReader{r: bufio.NewReader(strings.NewReader("10:0123456789,")), left: 6}
	if _, err := readInner(l, 100); !IsProtocolError(err) {
		t.Errorf("got %v", err)
	}
}

func FuzzNetstring(f *testing.F) {
	for _, s := range []string{"0:,", "12:hello world!,", "3:ab,", "3:abcd", "012:", "99999999999999999999:", "5:a", "2:ab,3:abc,"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		for i := 0; i < 100; i++ {
			b, err := Read(r, 1<<16)
			if err != nil {
				return
			}
			if len(b) > 1<<16 {
				t.Fatalf("netstring of %d bytes over the limit", len(b))
			}
			// What was read must encode back to a prefix of the input.
			if enc := Append(nil, b); !bytes.Contains(in, enc) {
				t.Fatalf("%q read from %q, which does not contain %q", b, in, enc)
			}
		}
	})
}
