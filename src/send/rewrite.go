package send

import (
	"strings"

	"github.com/notqmail/notqmail/src/control"
)

// Rewriter turns an envelope recipient from todo/ into the address qmail-send stores in
// local/ or remote/, with qmail-send's rules: envnoathost for addresses without @, the
// percenthack, locals, then virtualdomains.
type Rewriter struct {
	EnvNoAtHost string
	Locals      map[string]bool   // lowercased domains delivered locally
	PercentHack map[string]bool   // lowercased domains where user%host@domain becomes user@host
	VirtualDoms map[string]string // lowercased "user@dom", "dom" or ".dom" -> prepend; "" is an exception
}

// LoadRewriter reads control/locals, percenthack, virtualdomains and envnoathost.
func LoadRewriter(ctl control.Dir) (*Rewriter, error) {
	r := &Rewriter{}
	var err error
	if r.EnvNoAtHost, err = lineDefault(ctl, "envnoathost", true, "envnoathost"); err != nil {
		return nil, err
	}
	if err := r.Reload(ctl); err != nil {
		return nil, err
	}
	ph, err := ctl.Strings("percenthack")
	if err != nil {
		return nil, err
	}
	r.PercentHack = lowerSet(ph)
	return r, nil
}

// Reload rereads locals and virtualdomains, as qmail-send does on SIGHUP. On error the
// Rewriter is unchanged.
func (r *Rewriter) Reload(ctl control.Dir) error {
	locals, err := ctl.Strings("locals")
	if err != nil {
		return err
	}
	if _, ok, err := ctl.Line("locals"); err != nil {
		return err
	} else if !ok {
		// qmail's control_readfile with flagme: a missing locals means control/me.
		if me, ok, err := ctl.Me(); err != nil {
			return err
		} else if ok {
			locals = []string{me}
		}
	}
	vd, err := ctl.Lines("virtualdomains")
	if err != nil {
		return err
	}
	vdoms := map[string]string{}
	for _, l := range vd {
		// qmail's constmap with a ':' separator: the key is everything before the first ':'.
		k, v, ok := strings.Cut(l.Text, ":")
		if !ok {
			continue // qmail ignores a line without ':'
		}
		k = strings.ToLower(k)
		vdoms[k] = v // a later duplicate wins, as in qmail's constmap
	}
	r.Locals = lowerSet(locals)
	r.VirtualDoms = vdoms
	return nil
}

func lowerSet(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[strings.ToLower(s)] = true
	}
	return m
}

// Rewrite returns the stored form of a recipient and whether it is delivered locally.
func (r *Rewriter) Rewrite(recip string) (addr string, local bool) {
	a := recip
	at := strings.LastIndexByte(a, '@')
	if at < 0 {
		a += "@" + r.EnvNoAtHost
		at = len(recip)
	}
	// percenthack: user%host@domain -> user@host, repeatedly, while domain is listed.
	for r.PercentHack[strings.ToLower(a[at+1:])] {
		pct := strings.LastIndexByte(a[:at], '%')
		if pct < 0 {
			break
		}
		a = a[:pct] + "@" + a[pct+1:at]
		at = pct
	}
	at = strings.LastIndexByte(a, '@')
	if r.Locals[strings.ToLower(a[at+1:])] {
		return a, true
	}
	// virtualdomains: the whole address, then the domain, then each .suffix of it.
	for i := 0; i <= len(a); i++ {
		if i == 0 || i == at+1 || i == len(a) || (i > at && a[i] == '.') {
			if p, ok := r.VirtualDoms[strings.ToLower(a[i:])]; ok {
				if p == "" {
					break // an exception: deliver remotely as is
				}
				return p + "-" + a, true
			}
		}
	}
	return a, false
}

// StripVirtualPrepend undoes the virtualdomains prepend for the bounce text, so the
// sender sees the address it wrote.
func (r *Rewriter) StripVirtualPrepend(recip string) string {
	at := strings.LastIndexByte(recip, '@')
	if at < 0 {
		return recip
	}
	dom := recip[at+1:]
	for i := 0; i <= len(dom); i++ {
		if i == 0 || i == len(dom) || dom[i] == '.' {
			p, ok := r.VirtualDoms[strings.ToLower(dom[i:])]
			if !ok {
				continue
			}
			if p == "" || !strings.HasPrefix(recip, p) || len(recip) <= len(p) || recip[len(p)] != '-' {
				break
			}
			return recip[len(p)+1:]
		}
	}
	return recip
}

// DeliverySender is the envelope sender handed to the spawner for one recipient. A
// sender ending in "-@[]" asks for VERP: owner-@host-@[] becomes
// owner-recipbox=reciphost@host.
func DeliverySender(sender, recip string) string {
	n := len(sender)
	if n >= 4 && strings.HasSuffix(sender, "-@[]") {
		j := strings.LastIndexByte(sender[:n-4], '@')
		k := strings.LastIndexByte(recip, '@')
		if j < 0 {
			j = n - 4 // qmail's byte_rchr returns the length when not found
		}
		if k >= 0 && j+5 <= n {
			return sender[:j] + recip[:k] + "=" + recip[k+1:] + "@" + sender[j+1:n-4]
		}
	}
	return sender
}
