package main

import "github.com/notqmail/notqmail/src/local"

func init() { register("bouncesaying", bouncesayingMain) }

// bouncesayingMain bounces the message with a text, perhaps only when a program says so (see package local's Helper.BounceSaying).
func bouncesayingMain(args []string) int {
	return (&local.Helper{}).BounceSaying(args)
}
