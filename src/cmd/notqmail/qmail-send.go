package main

import (
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/queue"
	"github.com/notqmail/notqmail/src/send"
)

func init() { register("qmail-send", sendMain) }

// sendMain runs qmail-send with qmail-start's descriptors: the log on fd 0, the
// spawners on 1-4 and qmail-clean on 5-6.
func sendMain(args []string) int {
	// Catch the signals first: qmail-start may pass one on as soon as we exist.
	signal.Ignore(syscall.SIGPIPE) // a dead helper must show up as a write error
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGALRM, syscall.SIGHUP)
	log := send.Logger{W: os.Stdin}
	// fd 2 is qmail-lspawn's report pipe here, so a crash report must go to the log.
	debug.SetCrashOutput(os.Stdin, debug.CrashOptions{})
	if err := os.Chdir(home.Dir()); err != nil {
		log.Alert("cannot start: unable to switch to home directory")
		return 111
	}
	cfg, err := send.LoadConfig(control.Default())
	if err != nil {
		log.Alert("cannot start: unable to read controls: " + err.Error())
		return 111
	}
	q := queue.Default()
	if err := os.Chdir(q.Dir); err != nil {
		log.Alert("cannot start: unable to switch to queue directory")
		return 111
	}
	syscall.Umask(077)

	trigger, err := send.OpenTrigger(q.Trigger())
	if err != nil {
		// qmail-send still runs without the trigger; it then scans todo/ on its timer.
		log.Warning("unable to open " + q.Trigger() + ": " + err.Error())
	}
	d := &send.Daemon{
		Queue:  q,
		Config: cfg,
		Log:    log,
		Spawn: [2]send.Conn{
			{W: pipeFile(1, "lspawn-in"), R: pipeFile(2, "lspawn-out")},
			{W: pipeFile(3, "rspawn-in"), R: pipeFile(4, "rspawn-out")},
		},
		Clean:   send.Conn{W: pipeFile(5, "clean-in"), R: pipeFile(6, "clean-out")},
		Inject:  send.QueueInjector{},
		Trigger: trigger,
		Signals: sigs,
	}
	if err := d.Run(); err != nil {
		return 111
	}
	return 0
}
