package main

import "github.com/notqmail/notqmail/src/local"

func init() { register("forward", forwardMain) }

// forwardMain forwards the message on standard input to the addresses given (see package local's Helper.Forward).
func forwardMain(args []string) int {
	return (&local.Helper{}).Forward(args)
}
