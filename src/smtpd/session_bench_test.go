package smtpd

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// BenchmarkSession4K runs one pipelined SMTP session (EHLO, MAIL, RCPT, DATA with a
// 4 KiB body, QUIT) into an in-memory queue: the protocol parsing and dot-unstuffing
// cost of qmail-smtpd per message, without the network or qmail-queue.
func BenchmarkSession4K(b *testing.B) {
	var in strings.Builder
	in.WriteString("EHLO client.example.net\r\nMAIL FROM:<bob@example.net> SIZE=4200\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
	in.WriteString("Subject: bench\r\n\r\n")
	for in.Len() < 4096 {
		in.WriteString("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abc\r\n")
	}
	in.WriteString(".\r\nQUIT\r\n")
	input := in.String()
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		q := &memQueue{}
		Serve(struct {
			io.Reader
			io.Writer
		}{strings.NewReader(input), &out}, testConfig(q))
		if len(q.all()) != 1 {
			b.Fatalf("session queued %d messages:\n%s", len(q.all()), out.String())
		}
	}
}
