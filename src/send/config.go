package send

import (
	"github.com/notqmail/notqmail/src/control"
)

// Config is what qmail-send reads from control/ at start-up. Only locals and
// virtualdomains are reread later (SIGHUP).
type Config struct {
	Lifetime       int64      // control/queuelifetime, seconds
	Concurrency    [nchan]int // control/concurrencylocal, control/concurrencyremote
	BounceFrom     string     // control/bouncefrom
	BounceHost     string     // control/bouncehost
	DoubleBounceTo string     // doublebounceto@doublebouncehost
	Rewriter       *Rewriter
	Control        control.Dir
}

// SpawnLimit is qmail's conf-spawn: the most deliveries a spawner runs at once.
const SpawnLimit = 120

// LoadConfig reads qmail-send's control files with qmail's defaults.
func LoadConfig(ctl control.Dir) (*Config, error) {
	c := &Config{Control: ctl}
	var err error
	lt, err := ctl.Int("queuelifetime", 604800)
	if err != nil {
		return nil, err
	}
	c.Lifetime = int64(lt)
	if c.Concurrency[Local], err = ctl.Int("concurrencylocal", 10); err != nil {
		return nil, err
	}
	if c.Concurrency[Remote], err = ctl.Int("concurrencyremote", 20); err != nil {
		return nil, err
	}
	if c.BounceFrom, err = lineDefault(ctl, "bouncefrom", false, "MAILER-DAEMON"); err != nil {
		return nil, err
	}
	if c.BounceHost, err = lineDefault(ctl, "bouncehost", true, "bouncehost"); err != nil {
		return nil, err
	}
	dbhost, err := lineDefault(ctl, "doublebouncehost", true, "doublebouncehost")
	if err != nil {
		return nil, err
	}
	// An empty doublebounceto is a known way to throw double bounces away: they go to
	// "@host", which qmail-lspawn accepts without delivering.
	dbto, err := lineDefault(ctl, "doublebounceto", false, "postmaster")
	if err != nil {
		return nil, err
	}
	c.DoubleBounceTo = dbto + "@" + dbhost
	if c.Rewriter, err = LoadRewriter(ctl); err != nil {
		return nil, err
	}
	return c, nil
}

// lineDefault is qmail's control_rldef: the file's first line when the file exists,
// even if that line is empty; else control/me when useMe and me exists; else def.
func lineDefault(ctl control.Dir, name string, useMe bool, def string) (string, error) {
	v, ok, err := ctl.Line(name)
	if err != nil || ok {
		return v, err
	}
	if useMe {
		me, ok, err := ctl.Line("me")
		if err != nil || ok {
			return me, err
		}
	}
	return def, nil
}
