package main

import "github.com/notqmail/notqmail/src/local"

func init() { register("except", exceptMain) }

// exceptMain reverses a program's success and permanent failure (see package local's Helper.Except).
func exceptMain(args []string) int {
	return (&local.Helper{}).Except(args)
}
