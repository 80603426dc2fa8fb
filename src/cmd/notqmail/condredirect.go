package main

import "github.com/notqmail/notqmail/src/local"

func init() { register("condredirect", condredirectMain) }

// condredirectMain forwards the message when a program says so (see package local's Helper.CondRedirect).
func condredirectMain(args []string) int {
	return (&local.Helper{}).CondRedirect(args)
}
