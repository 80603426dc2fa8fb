// Package dotqmail reads qmail's .qmail files: the delivery language of dot-qmail(5)
// and the search for the file that controls an address (extensions, -default files).
//
// The rules are qmail-local's, kept exactly so that existing .qmail files behave as
// they did under qmail:
//
//   - each line is one instruction; trailing spaces and tabs are ignored (nothing
//     else is: a carriage return stays part of the line, as in qmail);
//   - '#' starts a comment; '|' a program for /bin/sh -c; '&' a forward; a line
//     starting with '/' or '.' is a file: a maildir if it ends in '/', else an mbox;
//   - "+list" makes the rest of the file forward-only; any other line starting
//     with '+' is ignored;
//   - every other non-blank line is a forwarding address, as if it began with '&';
//   - blank lines are allowed, except as the first line;
//   - a NUL byte ends its line's text (qmail handles lines as C strings).
package dotqmail

import (
	"bytes"
	"fmt"
)

// Kind is the type of one delivery instruction.
type Kind int

const (
	Program Kind = iota + 1 // |command
	Forward                 // &address or a bare address
	Mbox                    // /path or ./path, not ending in '/'
	Maildir                 // /path/ or ./path/
	List                    // +list: from here on, forwards only
)

func (k Kind) String() string {
	switch k {
	case Program:
		return "program"
	case Forward:
		return "forward"
	case Mbox:
		return "mbox"
	case Maildir:
		return "maildir"
	case List:
		return "list"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Instruction is one delivery line of a .qmail file.
type Instruction struct {
	Kind Kind
	// Target is the command (without '|'), the address (without '&'), or the path.
	Target string
	Line   int // 1-based line number in the file
}

// File is a parsed .qmail file.
type File struct {
	// Instructions in file order. A List instruction ("+list") makes every file or
	// program instruction after it an error, exactly as an execute bit on the file
	// makes every such instruction an error; it stays in order because qmail applies
	// it from its line on.
	Instructions []Instruction
}

// MaxSize bounds a .qmail file, so that a runaway file cannot exhaust memory. It is
// generous: a forward-only list of a hundred thousand addresses fits.
const MaxSize = 16 << 20

// ErrBlankFirstLine is qmail-local's refusal of a .qmail whose first line is blank.
var ErrBlankFirstLine = fmt.Errorf("first line of .qmail file is blank")

// Parse reads the text of a .qmail file. The caller handles an empty (0-byte) file,
// which means defaultdelivery; Parse of empty data gives no instructions. The only
// error is ErrBlankFirstLine.
func Parse(data []byte) (File, error) {
	var f File
	n := 0
	for len(data) > 0 {
		n++
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		line = bytes.TrimRight(line, " \t")
		// The text ends at a NUL, as qmail's C strings do; the maildir-or-mbox
		// choice is still made on the whole trimmed line, as qmail makes it.
		text := line
		if i := bytes.IndexByte(text, 0); i >= 0 {
			text = text[:i]
		}
		if len(text) == 0 {
			if n == 1 {
				return File{}, ErrBlankFirstLine
			}
			continue
		}
		switch line[0] {
		case '#':
		case '.', '/':
			k := Mbox
			if line[len(line)-1] == '/' {
				k = Maildir
			}
			f.Instructions = append(f.Instructions, Instruction{Kind: k, Target: string(text), Line: n})
		case '|':
			f.Instructions = append(f.Instructions, Instruction{Kind: Program, Target: string(text[1:]), Line: n})
		case '+':
			if string(text[1:]) == "list" {
				f.Instructions = append(f.Instructions, Instruction{Kind: List, Line: n})
			}
		case '&':
			f.Instructions = append(f.Instructions, Instruction{Kind: Forward, Target: string(text[1:]), Line: n})
		default:
			f.Instructions = append(f.Instructions, Instruction{Kind: Forward, Target: string(text), Line: n})
		}
	}
	return f, nil
}
