// Package e2e holds the end-to-end acceptance tests of the queue and local delivery:
// mail injected through sendmail and qmail-inject into a sandbox home, delivered by
// qmail-start's daemons to Maildir, mbox, program, forward and extension addresses,
// retried, bounced and double-bounced; and a queue written by hand the way qmail
// writes it, picked up by qmail-send. The tests are in e2e_test.go; this package has
// no code of its own.
package e2e
