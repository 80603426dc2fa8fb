// Package e2e holds the end-to-end acceptance tests of the queue and local delivery:
// mail injected through sendmail and qmail-inject into a sandbox home, delivered by
// qmail-start's daemons to Maildir, mbox, program, forward and extension addresses,
// retried, bounced and double-bounced; and a queue written by hand the way qmail
// writes it, picked up by qmail-send; qmail-queue and qmail-send killed at random
// points (crash safety); and the MTA as root in a home owned by root. The tests are in
// deliver_test.go, bounce_test.go, handqueue_test.go, crash_test.go and root_test.go,
// with their helpers in mta_test.go; this package has no code of its own.
package e2e
