package main

import "github.com/notqmail/notqmail/src/pop3"

func init() { register("qmail-popup", pop3.PopupMain) }
