package remote

import (
	"bufio"
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/control"
)

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"250 ok\r\n", "250-a\r\n250 b\r\n", "550 5.1.1 x\n", "2\r\n", "250-\r\n", strings.Repeat("250-x\r\n", 100) + "250 y\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rep, err := readReply(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			return
		}
		if rep.Code < 200 || rep.Code > 599 || len(rep.Lines) == 0 {
			t.Fatalf("accepted %+v", rep)
		}
		if text := rep.Text(); len(text) > maxReplyText+len(rep.Lines) || strings.ContainsAny(text, "\x00\r") {
			t.Fatalf("text %q", text)
		}
	})
}

func FuzzWriteData(f *testing.F) {
	for _, s := range []string{"a\nb\n", ".\n", "..\r\n.", "x\r", "\r\r\n\n.\n.x", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		if err := writeData(w, bytes.NewReader(in)); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		out := b.String()
		if !strings.HasSuffix(out, "\r\n.\r\n") && out != ".\r\n" {
			t.Fatalf("no terminator: %q", out)
		}
		body := strings.TrimSuffix(out, ".\r\n")
		lines := strings.Split(body, "\r\n")
		lines = lines[:len(lines)-1] // body ends in CR LF
		var unstuffed []string
		for _, l := range lines {
			if strings.ContainsAny(l, "\r\n") {
				t.Fatalf("bare CR or LF in %q", l)
			}
			if l == "." {
				t.Fatalf("lone dot line in %q", out)
			}
			if strings.HasPrefix(l, ".") {
				if !strings.HasPrefix(l, "..") {
					t.Fatalf("unstuffed dot line %q", l)
				}
				l = l[1:]
			}
			unstuffed = append(unstuffed, l)
		}
		// Undoing the stuffing gives the input with every line ending made CR LF.
		want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(string(in))
		if want != "" && !strings.HasSuffix(want, "\n") {
			want += "\n"
		}
		got := strings.Join(unstuffed, "\n")
		if len(unstuffed) > 0 {
			got += "\n"
		}
		if got != want {
			t.Fatalf("round trip: %q -> %q, want %q", in, got, want)
		}
	})
}

func FuzzControlFiles(f *testing.F) {
	for _, s := range []string{"example.com:relay:25", ":[::1]:26", ".x:", "a", "x:y:z:w", "192.0.2.1,2001:db8::1", "d:sha256=00", "d:verify"} {
		f.Add(s)
	}
	ctl := control.Open(f.TempDir())
	f.Fuzz(func(t *testing.T, line string) {
		lines := []control.Line{{Text: line, N: 1}}
		if rs, err := ParseRoutes(ctl, lines); err == nil {
			for _, r := range rs {
				if r.Port < 0 || r.Port > 65535 {
					t.Fatalf("port %d", r.Port)
				}
			}
			rs.Lookup("a.b.example.com")
		}
		ParseOutgoingIP(ctl, lines)
		if p, err := ParseTLSDestinations(ctl, lines); err == nil {
			p.TLSPolicy(context.Background(), "x", "y")
		}
	})
}
