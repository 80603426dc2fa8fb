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
	if c.BounceFrom, err = ctl.LineOr("bouncefrom", "MAILER-DAEMON"); err != nil {
		return nil, err
	}
	if c.BounceHost, err = ctl.LineOrMe("bouncehost", "bouncehost"); err != nil {
		return nil, err
	}
	dbhost, err := ctl.LineOrMe("doublebouncehost", "doublebouncehost")
	if err != nil {
		return nil, err
	}
	dbto, err := ctl.LineOr("doublebounceto", "postmaster")
	if err != nil {
		return nil, err
	}
	c.DoubleBounceTo = dbto + "@" + dbhost
	if c.Rewriter, err = LoadRewriter(ctl); err != nil {
		return nil, err
	}
	return c, nil
}
