// Package mailaddr tokenizes RFC 822 header fields and address lists the way qmail's
// token822 does, so that qmail-inject rewrites headers exactly as qmail does: the same
// tokens, the same address boundaries (including its comma insertion between adjacent
// words), and the same unparsed text with its line folding.
package mailaddr

import (
	"errors"
	"strings"
)

// Kind is a token's type.
type Kind int

// Token kinds, as in RFC 822.
const (
	Atom    Kind = iota + 1
	Quote        // "quoted string"; Text is unescaped
	Literal      // [domain literal]; Text is unescaped, without brackets
	Comment      // (comment); Text is unescaped, without parentheses
	Comma
	At
	Dot
	Left  // <
	Right // >
	Semi
	Colon
)

// Token is one lexical token of a header field.
type Token struct {
	Kind Kind
	Text string // for Atom, Quote, Literal and Comment
}

// ErrSyntax is an unbalanced quote, comment, literal or bracket.
var ErrSyntax = errors.New("unbalanced quote, comment, literal or bracket")

// special reports whether c ends an atom.
func special(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '(', '[', '"', '<', '>', ';', ':', '@', ',', '.':
		return true
	}
	return false
}

// Tokenize splits s into tokens. White space (including the newlines of folded
// lines) separates tokens and is dropped. A stray ')' or ']', or an unterminated
// comment, quoted string or literal, is ErrSyntax.
func Tokenize(s string) ([]Token, error) {
	var toks []Token
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case ' ', '\t', '\r', '\n':
		case '.':
			toks = append(toks, Token{Kind: Dot})
		case ',':
			toks = append(toks, Token{Kind: Comma})
		case '@':
			toks = append(toks, Token{Kind: At})
		case '<':
			toks = append(toks, Token{Kind: Left})
		case '>':
			toks = append(toks, Token{Kind: Right})
		case ':':
			toks = append(toks, Token{Kind: Colon})
		case ';':
			toks = append(toks, Token{Kind: Semi})
		case ')', ']':
			return nil, ErrSyntax
		case '(', '"', '[':
			kind, end := Comment, byte(')')
			if c == '"' {
				kind, end = Quote, '"'
			} else if c == '[' {
				kind, end = Literal, ']'
			}
			var b strings.Builder
			// Comments nest; like qmail, the inner parentheses are not kept as text.
			for level := 1; level > 0; {
				i++
				if i >= len(s) {
					return nil, ErrSyntax
				}
				switch ch := s[i]; {
				case ch == end:
					level--
				case ch == '(' && kind == Comment:
					level++
				case ch == '\\':
					i++
					if i >= len(s) {
						return nil, ErrSyntax
					}
					b.WriteByte(s[i])
				default:
					b.WriteByte(ch)
				}
			}
			toks = append(toks, Token{Kind: kind, Text: b.String()})
		default:
			var b strings.Builder
			for {
				if s[i] == '\\' {
					i++
					if i >= len(s) {
						break
					}
				}
				b.WriteByte(s[i])
				i++
				if i >= len(s) || special(s[i]) {
					break
				}
			}
			i--
			if b.Len() > 0 { // a lone trailing backslash spells nothing
				toks = append(toks, atom(b.String()))
			}
		}
	}
	return toks, nil
}

// atom makes an Atom token, or a Quote when the text holds characters an atom cannot
// carry unescaped (controls, 8-bit bytes, ')', ']' or '\'). qmail also keeps a
// backslash-escaped special such as "a\@b" as an atom and writes it back unescaped,
// which changes the address; such atoms become quoted strings here instead.
func atom(text string) Token {
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c < 32 || c > 126 || c == ')' || c == ']' || c == '\\' || special(c) {
			return Token{Kind: Quote, Text: text}
		}
	}
	return Token{Kind: Atom, Text: text}
}

func wordlike(k Kind) bool {
	return k == Atom || k == Literal || k == Quote || k == Comment
}

// needSpace reports whether unparsing puts a space between tokens of kinds prev and
// next (prev 0 at the start).
func needSpace(prev, next Kind) bool {
	switch {
	case prev == 0:
		return false
	case prev == Colon, prev == Comma, next == Left:
		return true
	}
	return wordlike(prev) && wordlike(next)
}

// Unparse turns tokens back into header text ending in a newline. Lines are broken
// after commas so that each stays within linelen bytes where possible (0: never
// break); continuation lines start with white space.
func Unparse(toks []Token, linelen int) string {
	var b []byte
	lineb, linee := 0, -1 // start of the current line; position of the last tentative break
	// tentativeBreak puts "\n " after a comma (or at the end), and removes the previous
	// tentative break when the line through here still fits.
	tentativeBreak := func() {
		if linee >= 0 && (linelen == 0 || len(b)-lineb <= linelen) {
			b = append(b[:linee], b[linee+2:]...)
			linee = len(b)
			b = append(b, '\n', ' ')
			return
		}
		if linee >= 0 {
			lineb = linee + 1
		}
		linee = len(b)
		b = append(b, '\n', ' ')
	}
	var last Kind
	for _, t := range toks {
		if needSpace(last, t.Kind) {
			b = append(b, ' ')
		}
		last = t.Kind
		switch t.Kind {
		case Comma:
			b = append(b, ',')
			tentativeBreak()
		case At:
			b = append(b, '@')
		case Dot:
			b = append(b, '.')
		case Left:
			b = append(b, '<')
		case Right:
			b = append(b, '>')
		case Semi:
			b = append(b, ';')
		case Colon:
			b = append(b, ':')
		case Atom, Quote, Literal, Comment:
			open, close := byte(0), byte(0)
			switch t.Kind {
			case Quote:
				open, close = '"', '"'
			case Literal:
				open, close = '[', ']'
			case Comment:
				open, close = '(', ')'
			}
			if open != 0 {
				b = append(b, open)
			}
			for i := 0; i < len(t.Text); i++ {
				switch c := t.Text[i]; c {
				case '"', '[', ']', '(', ')', '\\', '\r', '\n':
					b = append(b, '\\', c)
				default:
					b = append(b, c)
				}
			}
			if close != 0 {
				b = append(b, close)
			}
		}
	}
	tentativeBreak()
	return string(b[:len(b)-1])
}

// Unquote returns the address the tokens spell, as it goes into an envelope: quoted
// strings lose their quotes, literals keep their brackets, comments vanish.
func Unquote(toks []Token) string {
	var b strings.Builder
	for _, t := range toks {
		switch t.Kind {
		case Comma:
			b.WriteByte(',')
		case At:
			b.WriteByte('@')
		case Dot:
			b.WriteByte('.')
		case Left:
			b.WriteByte('<')
		case Right:
			b.WriteByte('>')
		case Semi:
			b.WriteByte(';')
		case Colon:
			b.WriteByte(':')
		case Literal:
			b.WriteByte('[')
			b.WriteString(t.Text)
			b.WriteByte(']')
		case Atom, Quote:
			b.WriteString(t.Text)
		}
	}
	return b.String()
}

// Rewrite is called for each address of an address list with the address's tokens in
// order; it returns the tokens to put in its place.
type Rewrite func(addr []Token) []Token

// ErrGroup is a group's ':' without its ';' or a ';' inside a group, or a '>' without
// its '<'.
var ErrGroup = errors.New("malformed address group or angle address")

// AddrList rewrites the address list in a header field: toks is the whole field,
// starting with its name and colon, which are kept. Each address is passed to rw, from
// the last to the first, as qmail does; words that follow one another without a comma
// are taken as separate addresses and a comma is inserted between them.
//
// On a syntax error the addresses already passed to rw stay passed.
func AddrList(toks []Token, rw Rewrite) ([]Token, error) {
	const begin = 2 // the field name and its colon
	// out and addr are built from right to left and reversed at the end.
	var out, addr []Token
	flush := func(comma bool) {
		if len(addr) == 0 {
			return
		}
		reverse(addr)
		got := rw(addr)
		for i := len(got) - 1; i >= 0; i-- {
			out = append(out, got[i])
		}
		addr = addr[:0]
		if comma {
			out = append(out, Token{Kind: Comma})
		}
	}
	inGroup, wordOK := false, true
	t := len(toks) - 1
	for t >= begin {
		switch toks[t].Kind {
		case Semi:
			flush(true)
			if inGroup {
				return nil, ErrGroup
			}
			inGroup, wordOK = true, true
		case Colon:
			flush(false)
			if !inGroup {
				return nil, ErrGroup
			}
			inGroup = false
			// The group's name runs back to the previous comma.
			for t >= begin && toks[t].Kind != Comma {
				out = append(out, toks[t])
				t--
			}
			if t >= begin {
				out = append(out, toks[t])
				t--
			}
			wordOK = true
			continue
		case Right:
			flush(true)
			out = append(out, toks[t])
			t--
			for t >= begin && toks[t].Kind != Left {
				addr = append(addr, toks[t])
				t--
			}
			// <> is an address too: the rewrite sees it even when empty.
			reverse(addr)
			got := rw(addr)
			for i := len(got) - 1; i >= 0; i-- {
				out = append(out, got[i])
			}
			addr = addr[:0]
			if t < begin {
				return nil, ErrGroup
			}
			out = append(out, toks[t])
			t--
			// The phrase before <...>.
			for t >= begin {
				k := toks[t].Kind
				if k != Comment && k != Atom && k != Quote && k != At && k != Dot {
					break
				}
				out = append(out, toks[t])
				t--
			}
			wordOK = false
			continue
		case Atom, Quote, Literal:
			if !wordOK {
				flush(true)
			}
			wordOK = false
			addr = append(addr, toks[t])
			t--
			continue
		case Comment:
			// A comment is white space: it does not end a word.
		case Comma:
			flush(false)
			wordOK = true
		default:
			wordOK = true
			addr = append(addr, toks[t])
			t--
			continue
		}
		out = append(out, toks[t])
		t--
	}
	flush(false)
	for t++; t > 0; {
		t--
		out = append(out, toks[t])
	}
	reverse(out)
	return out, nil
}

func reverse(ts []Token) {
	for i, j := 0, len(ts)-1; i < j; i, j = i+1, j-1 {
		ts[i], ts[j] = ts[j], ts[i]
	}
}
