package main

import "github.com/notqmail/notqmail/src/local"

func init() { register("preline", prelineMain) }

// prelineMain runs a program with the UFLINE, RPLINE and DTLINE lines before the message (see package local's Helper.Preline).
func prelineMain(args []string) int {
	return (&local.Helper{}).Preline(args)
}
