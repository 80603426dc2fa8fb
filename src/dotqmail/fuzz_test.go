package dotqmail

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParse checks that any .qmail text parses without panicking and that what comes
// out obeys the language: every instruction is non-empty where it must be, carries a
// real line number, has no NUL or newline in its target, and is classified by its
// first byte exactly as qmail classifies it.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"./Maildir/\n",
		"# c\n|cmd arg\n&a@b\nc@d\n/mbox\n+list\n\n./x/",
		"\n",
		"|\n",
		"&\n",
		"./a \t\r\n",
		"\x00\n",
		"+list\x00x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			if err != ErrBlankFirstLine {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		lines := bytes.Split(data, []byte("\n"))
		last := 0
		for _, in := range file.Instructions {
			if in.Line <= last || in.Line > len(lines) {
				t.Fatalf("line %d out of order or range (last %d, %d lines)", in.Line, last, len(lines))
			}
			last = in.Line
			if strings.ContainsAny(in.Target, "\x00\n") {
				t.Fatalf("target %q holds NUL or newline", in.Target)
			}
			raw := bytes.TrimRight(lines[in.Line-1], " \t")
			switch raw[0] {
			case '|':
				if in.Kind != Program {
					t.Fatalf("%q parsed as %v", raw, in.Kind)
				}
			case '.', '/':
				want := Mbox
				if raw[len(raw)-1] == '/' {
					want = Maildir
				}
				if in.Kind != want || in.Target == "" {
					t.Fatalf("%q parsed as %v %q", raw, in.Kind, in.Target)
				}
			case '+':
				if in.Kind != List || string(bytes.SplitN(raw, []byte{0}, 2)[0]) != "+list" {
					t.Fatalf("%q parsed as %v", raw, in.Kind)
				}
			case '#', 0:
				t.Fatalf("%q should not be an instruction", raw)
			default:
				if in.Kind != Forward {
					t.Fatalf("%q parsed as %v", raw, in.Kind)
				}
			}
		}
	})
}
