package local

import (
	"strings"
)

// DeliveredTo is the Delivered-To line for local@host, newline-terminated, with any
// newline inside the address replaced by '_' so it stays one line.
func DeliveredTo(local, host string) string {
	return strings.ReplaceAll("Delivered-To: "+local+"@"+host, "\n", "_") + "\n"
}

// ReturnPath is the Return-Path line for an envelope sender, quoted as qmail quotes
// addresses: "Return-Path: <>" for the empty sender.
func ReturnPath(sender string) string {
	return strings.ReplaceAll("Return-Path: <"+QuoteAddress(sender), "\n", "_") + ">\n"
}

// QuoteAddress quotes the local part of an address (the part before the last '@') as
// RFC 821 requires, with as little quoting as possible; the domain is kept as is
// (qmail's quote2). The empty address stays empty.
func QuoteAddress(addr string) string {
	if addr == "" {
		return ""
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return quoteLocal(addr)
	}
	return quoteLocal(addr[:at]) + addr[at:]
}

// atomOK marks the bytes that may appear unquoted in a local part.
var atomOK = func() (ok [128]bool) {
	for c := '!'; c <= '~'; c++ {
		ok[c] = true
	}
	for _, c := range "\"(),:;<>@[\\]" {
		ok[c] = false
	}
	return ok
}()

func quoteLocal(s string) string {
	need := s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..")
	for i := 0; i < len(s) && !need; i++ {
		if s[i] >= 128 || !atomOK[s[i]] {
			need = true
		}
	}
	if !need {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\r', '\n', '"', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// hostParts returns HOST2, HOST3 and HOST4: host with its last one, two and three
// dot-separated parts removed (the whole host when it has no more dots).
func hostParts(host string) [3]string {
	var out [3]string
	h := host
	for i := range out {
		if j := strings.LastIndexByte(h, '.'); j >= 0 {
			h = h[:j]
		}
		out[i] = h
	}
	return out
}

// extParts returns EXT2, EXT3 and EXT4: ext with its first one, two and three
// dash-separated parts removed (empty when there are no more).
func extParts(ext string) [3]string {
	var out [3]string
	x := ext
	for i := range out {
		if j := strings.IndexByte(x, '-'); j >= 0 {
			x = x[j+1:]
		} else {
			x = ""
		}
		out[i] = x
	}
	return out
}
