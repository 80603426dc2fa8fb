package remote

import (
	"bufio"
	"bytes"
	"io"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// writeDataByByte is writeData as it was first written, a byte at a time: the
// reference the chunked writeData must match.
func writeDataByByte(w *bufio.Writer, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64*1024)
	lineStart, cr := true, false
	for {
		c, err := br.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if cr {
			cr = false
			w.WriteString("\r\n")
			lineStart = true
			if c == '\n' {
				continue
			}
		}
		switch c {
		case '\r':
			cr = true
			continue
		case '\n':
			w.WriteString("\r\n")
			lineStart = true
			continue
		case '.':
			if lineStart {
				w.WriteByte('.')
			}
		}
		w.WriteByte(c)
		lineStart = false
	}
	if cr || !lineStart {
		w.WriteString("\r\n")
	}
	_, err := w.WriteString(".\r\n")
	return err
}

// scanByByte is Message.scan as it was first written, the reference for the
// chunked one.
func scanByByte(in []byte) (m Message) {
	inHeader, lineStart := true, true
	var hdr []byte
	var prev byte
	for _, c := range in {
		m.Size++
		if c == '\n' && prev != '\r' {
			m.Size++
		}
		if prev == '\r' && c != '\n' {
			m.Size++
		}
		if c >= 0x80 {
			m.EightBit = true
		}
		if inHeader {
			if c == '\n' {
				if lineStart {
					inHeader = false
				}
				if !m.UTF8Header && len(hdr) > 0 && utf8.Valid(hdr) {
					m.UTF8Header = true
				}
				hdr = hdr[:0]
				lineStart = true
			} else if c != '\r' {
				lineStart = false
				if c >= 0x80 || len(hdr) > 0 && len(hdr) < 4096 {
					hdr = append(hdr, c)
				}
			}
		}
		prev = c
	}
	return m
}

// FuzzChunkedMatchesByByte checks writeData and PrepareMessage's scan against the
// byte-at-a-time references, with reads cut at every possible place.
func FuzzChunkedMatchesByByte(f *testing.F) {
	for _, s := range []string{"a\nb\n", ".\n", "..\r\n.", "x\r", "\r\r\n\n.\n.x", "", "Subject: Gr\xc3\xbc\n\n.\r.\n\r\n.",
		"H: \xe9\r\n\r\nbody\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var want bytes.Buffer
		ww := bufio.NewWriter(&want)
		writeDataByByte(ww, bytes.NewReader(in))
		ww.Flush()
		for name, r := range map[string]io.Reader{
			"whole":    bytes.NewReader(in),
			"one byte": iotest.OneByteReader(bytes.NewReader(in)),
			"halves":   iotest.HalfReader(bytes.NewReader(in)),
			"data+EOF": iotest.DataErrReader(bytes.NewReader(in)),
		} {
			var got bytes.Buffer
			w := bufio.NewWriter(&got)
			if err := writeData(w, r); err != nil {
				t.Fatal(err)
			}
			w.Flush()
			if got.String() != want.String() {
				t.Fatalf("%s: writeData(%q) = %q, byte by byte %q", name, in, got.String(), want.String())
			}
		}
		m, err := PrepareMessage(bytes.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		ref := scanByByte(in)
		if m.Size != ref.Size || m.EightBit != ref.EightBit || m.UTF8Header != ref.UTF8Header {
			t.Fatalf("scan(%q): size %d 8bit %v utf8 %v, byte by byte %d %v %v", in, m.Size, m.EightBit, m.UTF8Header, ref.Size, ref.EightBit, ref.UTF8Header)
		}
	})
}
