package main

import "github.com/notqmail/notqmail/src/pop3"

func init() { register("qmail-pop3d", pop3.Pop3dMain) }
