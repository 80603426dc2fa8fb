package main

import "github.com/notqmail/notqmail/src/qmtp"

func init() {
	register("qmail-qmtpd", func(args []string) int { return qmtp.ServerMain("qmail-qmtpd", qmtp.ServeQMTP, args) })
}
