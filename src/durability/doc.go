// Package durability checks, rather than assumes, that notqmail makes mail durable
// before it says so: that every program that reports success (qmail-queue's exit 0,
// qmail-queued's reply byte 0, qmail-local's "did" report and exit 0, qmail-lspawn's K,
// qmail-send's D mark) has first fsynced what it wrote and the directory entries that
// make it reachable. It holds a parser for strace's output (ParseTrace) and checks over
// the parsed calls (SyncedBefore, DirSyncedBetween, Names); the tests run the real
// built programs of a sandbox home (package sandbox) under the real strace.
//
// What is proven, and how:
//
// Order, by syscall trace (strace -f -tt -y, every thread and child, descriptors shown
// with their paths; see TraceSyscalls). A file counts as synced when a successful
// fsync or fdatasync of a descriptor naming it (under any name it had: pid/, spare/q/,
// tmp/ names are followed through links and renames) comes after its last successful
// write and before the event that publishes or reports it:
//
//   - bin/qmail-queue: mess/ file and its mess/<split> directory, then intd/, before
//     intd/ is linked to todo/; todo/ after that link and before exit_group(0).
//   - qmail-queued (started by qmail-start, traced whole): the same order, before it
//     writes the success byte to the client's socket.
//   - qmail-local, exec'ed: the Maildir tmp/ file before its link into new/, new/ after
//     that and before the "did" report and exit 0; an mbox before the report.
//   - the whole MTA (qmail-start and all its daemons): qmail-send's info/, local/ and
//     remote/ files and their directories before todo/<id> is unlinked (by qmail-clean),
//     for several messages preprocessed concurrently; the Maildir order above in the
//     qmail-local worker (where a syncfs of the Maildir's file system, shared by the
//     worker's concurrent deliveries, stands for each fsync), before its "did" report,
//     before qmail-lspawn's K report and before qmail-send marks the recipient done
//     (D) in local/.
//   - bounces: the failure report in bounce/<id> and bounce/ itself before the failed
//     recipient is marked done; the bounce message queued durably (mess/, intd/, todo/
//     synced) before bounce/<id> is removed.
//   - recycling (qmail-clean's spare/q): the envelope file (intd/ = todo/) is not
//     made a spare (renamed to spare/q/<inode>, where qmail-queued may rewrite it) or
//     changed until the unlink of todo/<id> is on disk, and a finished mess/ file,
//     whose inode number becomes the next message's id, not until the removals of its
//     info/ and local/ files are: otherwise a crash on a file system that does not
//     order metadata writes (ext4 without a journal) could bring back a todo/ entry
//     holding another envelope (whose preprocessing would replace info/ and local/)
//     or join an old message's files to a new one. A spare keeps its old data, and
//     qmail-queued cuts a reused one to what it wrote before the sync that precedes
//     the todo/ link.
//   - qmail-send's own reuse (spare/s): a finished info/, local/ or remote/ file is
//     written as another message's file only once its removal is on disk, else a crash
//     could bring back local/<id> of a message still queued (for remote recipients)
//     holding another message's recipients.
//
// Failure, by injection (strace -e inject=fsync:error=EIO, which makes the call fail
// for real in a static Go binary; -P limits it to one directory's descriptors where a
// whole MTA is traced). strace counts calls per thread, so the tests read the trace to
// see which fsync failed and retry until each one has:
//
//   - bin/qmail-queue exits 53 for each of its four fsyncs; before the todo/ link
//     nothing of the message is left in the queue; when only todo/'s own sync fails,
//     the message stays queued (a possible duplicate after the client's retry, never a
//     loss).
//   - qmail-local exits 111 (temporary, Z for qmail-lspawn) with nothing in new/, cur/
//     or tmp/ when the tmp/ file's or new/'s sync fails; an mbox is cut back to its
//     old contents.
//   - through SMTP (swaks and qmail-smtpd): 451, not 250, when qmail-queue's or
//     qmail-queued's fsync fails, and nothing queued; queueclient gets exit code 53.
//   - in the whole MTA, a failing new/ sync in the worker (fsync, or the syncfs the
//     worker calls through its descriptor of new/) is a deferral in qmail-send's log,
//     the message stays queued, and the Maildir holds nothing.
//
// Not proven here: that the disk honours fsync (that is the kernel's and the
// hardware's promise), and behaviour across a real power cut; the crash tests of
// package e2e kill the programs at random points and check that the queue holds
// either nothing or a complete message.
package durability
