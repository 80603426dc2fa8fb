package local

import (
	"strings"

	"github.com/notqmail/notqmail/src/mailaddr"
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

// QuoteAddress quotes the local part of an address as RFC 821 requires, with as
// little quoting as possible (qmail's quote2); see mailaddr.QuoteAddr.
func QuoteAddress(addr string) string { return mailaddr.QuoteAddr(addr) }

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
