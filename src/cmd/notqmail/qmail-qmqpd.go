package main

import "github.com/notqmail/notqmail/src/qmtp"

func init() {
	register("qmail-qmqpd", func(args []string) int { return qmtp.ServerMain("qmail-qmqpd", qmtp.ServeQMQP, args) })
}
