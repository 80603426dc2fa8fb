package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/notqmail/notqmail/src/groupsync"
	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/ids"
	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/queued"
)

func init() { register("qmail-queued", queuedMain) }

// queuedMain runs qmail-queued as qmail-start starts it: as qmailq, with a pipe from
// qmail-start on fd 0 whose end of file (qmail-start has exited) stops it, and the log
// on fd 2.
func queuedMain(args []string) int {
	say := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "qmail-queued: "+format+"\n", a...) }
	if len(args) > 0 {
		say("usage: qmail-queued")
		return 100
	}
	// As qmail-queue: a stray signal must not kill a half-written message, and write
	// errors must be seen as errors.
	signal.Ignore(syscall.SIGPIPE, syscall.SIGVTALRM, syscall.SIGPROF, syscall.SIGQUIT,
		syscall.SIGINT, syscall.SIGHUP, syscall.SIGXCPU, syscall.SIGXFSZ)
	syscall.Umask(033)
	srv := &queued.Server{QueueProgram: home.Path("bin", "qmail-queue")}
	srv.Sandbox = home.InSandbox()
	if o, ok := home.Sandbox(); ok {
		srv.SandboxUID = o.UID
	}
	q, err := ids.User(ids.Qmailq)
	if err != nil {
		say("alert: %v", err)
		return 111
	}
	if !srv.Sandbox && os.Geteuid() != q.UID {
		// Files it makes must belong to qmailq, as qmail-queue's do.
		say("alert: must run as %s (uid %d), not uid %d", ids.Qmailq, q.UID, os.Geteuid())
		return 111
	}
	for _, x := range []struct {
		name string
		uid  *int
	}{{ids.Alias, &srv.Alias}, {ids.Qmaild, &srv.Qmaild}, {ids.Qmails, &srv.Qmails}} {
		a, err := ids.User(x.name)
		if err != nil {
			say("alert: %v", err)
			return 111
		}
		*x.uid = a.UID
	}
	if err := os.Chdir(home.Path("queue")); err != nil {
		say("alert: unable to switch to the queue directory: %v", err)
		return 111
	}
	srv.Queue = queue.Open(".")
	srv.Spares = queue.NewSpares(srv.Queue)
	// Opened before anything is queued, so that syncfs reports every writeback error
	// of the messages this service queues.
	if gs, err := groupsync.Open("."); err != nil {
		say("warning: unable to open the queue directory for group commit: %v; each message syncs its own files", err)
	} else {
		defer gs.Close()
		srv.Sync = gs
	}
	if !srv.Usable() {
		// Usable has logged why. Wait for qmail-start all the same: exiting would
		// look like a crash to a supervisor, and clients run bin/qmail-queue.
		io.Copy(io.Discard, os.Stdin)
		return 0
	}
	sock := queued.SocketPath(home.Dir())
	l, err := queued.Listen(sock)
	if err != nil {
		say("alert: unable to listen on %s: %v; clients run bin/qmail-queue", sock, err)
		io.Copy(io.Discard, os.Stdin)
		return 111
	}
	// Remove the socket at the end only while it is still ours: a qmail-queued started
	// meanwhile by a new qmail-start may have replaced it.
	l.SetUnlinkOnClose(false)
	var mine syscall.Stat_t
	syscall.Stat(sock, &mine)
	unlink := func() {
		var now syscall.Stat_t
		if syscall.Stat(sock, &now) == nil && now.Dev == mine.Dev && now.Ino == mine.Ino {
			os.Remove(sock)
		}
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	go func() {
		// qmail-start holds the other end: end of file means it has gone.
		io.Copy(io.Discard, os.Stdin)
		stop <- syscall.SIGTERM
	}()
	go func() {
		<-stop
		unlink() // new clients run bin/qmail-queue while the last messages finish
		l.Close()
	}()
	if err := srv.Serve(l); err != nil {
		say("alert: %v", err)
		return 111
	}
	return 0
}
