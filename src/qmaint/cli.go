package qmaint

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/notqmail/notqmail/src/queue"
)

const usage = `usage: qmail-qmaint [-j] [-S] [-t state] [-s sender] [-r recipient] [-d domain]
                    [-o age] [-n age] [-b key] [-q queuedir] command [id ...]
commands: list, count, show, delete, expire, requeue, hold, release`

// Main is qmail-qmaint. Exit codes: 0 done, 1 some messages not found or not changed,
// 100 usage, 111 the queue or qmail-send's lock could not be used.
func Main(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("qmail-qmaint", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	jsonOut := fl.Bool("j", false, "")
	stop := fl.Bool("S", false, "")
	var f Filter
	fl.StringVar(&f.State, "t", "", "")
	fl.StringVar(&f.Sender, "s", "", "")
	fl.StringVar(&f.Recipient, "r", "", "")
	fl.StringVar(&f.Domain, "d", "", "")
	older := fl.String("o", "", "")
	newer := fl.String("n", "", "")
	by := fl.String("b", "state", "")
	qdir := fl.String("q", "", "")
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "qmail-qmaint: fatal: "+format+"\n", a...)
		return 111
	}
	usageErr := func(msg string) int {
		if msg != "" {
			fmt.Fprintln(stderr, "qmail-qmaint:", msg)
		}
		fmt.Fprintln(stderr, usage)
		return 100
	}
	if err := fl.Parse(args); err != nil {
		return usageErr(err.Error())
	}
	var err error
	if f.OlderThan, err = parseAge(*older); err != nil {
		return usageErr(err.Error())
	}
	if f.NewerThan, err = parseAge(*newer); err != nil {
		return usageErr(err.Error())
	}
	switch f.State {
	case "", StateTodo, StateQueued, StateHeld:
	default:
		return usageErr("state is todo, queued or held")
	}
	cmd := "list"
	rest := fl.Args()
	if len(rest) > 0 {
		cmd, rest = rest[0], rest[1:]
	}
	var ids []uint64
	for _, a := range rest {
		id, ok := parseID(strings.TrimPrefix(a, "#"))
		if !ok {
			return usageErr("bad message id " + a)
		}
		ids = append(ids, id)
	}
	q := queue.Default()
	if *qdir != "" {
		q = queue.Open(*qdir)
	}
	m := &Manager{Q: q}
	w := bufio.NewWriter(stdout)
	defer w.Flush()

	// selected returns the messages named by ids, or else those the filter passes.
	selected := func() ([]Message, int) {
		if len(ids) > 0 {
			var msgs []Message
			missing := 0
			for _, id := range ids {
				msg, err := m.Get(id)
				if err != nil {
					fmt.Fprintf(stderr, "qmail-qmaint: %d: %v\n", id, err)
					missing++
					continue
				}
				if f.Match(msg, m.now()) {
					msgs = append(msgs, msg)
				}
			}
			return msgs, missing
		}
		all, err := m.List()
		if err != nil {
			fmt.Fprintln(stderr, "qmail-qmaint: fatal:", err)
			return nil, -1
		}
		var msgs []Message
		for _, msg := range all {
			if f.Match(msg, m.now()) {
				msgs = append(msgs, msg)
			}
		}
		return msgs, 0
	}
	status := func(missing int) int {
		if missing > 0 {
			return 1
		}
		return 0
	}

	switch cmd {
	case "list":
		msgs, missing := selected()
		if missing < 0 {
			return 111
		}
		if *jsonOut {
			writeJSON(w, orEmpty(msgs))
		} else {
			m.writeTable(w, msgs)
		}
		return status(missing)
	case "count":
		msgs, missing := selected()
		if missing < 0 {
			return 111
		}
		counts, err := Count(msgs, *by, m.now())
		if err != nil {
			return usageErr(err.Error())
		}
		if *jsonOut {
			writeJSON(w, counts)
		} else {
			writeCounts(w, counts)
		}
		return status(missing)
	case "show":
		if len(ids) == 0 {
			return usageErr("show needs message ids")
		}
		msgs, missing := selected()
		for _, msg := range msgs {
			if *jsonOut {
				writeJSON(w, msg)
				continue
			}
			if err := m.WriteMessage(w, msg); err != nil {
				fmt.Fprintf(stderr, "qmail-qmaint: %d: %v\n", msg.ID, err)
				missing++
			}
			fmt.Fprintln(w)
		}
		return status(missing)
	case "delete", "expire", "requeue", "hold", "release":
	default:
		return usageErr("unknown command " + cmd)
	}

	if len(ids) == 0 && f.Empty() {
		return usageErr(cmd + " needs message ids or a selection (-t, -s, -r, -d, -o, -n)")
	}
	unlock, err := m.Lock(*stop)
	var running *SendRunningError
	if cmd == "requeue" && errors.As(err, &running) {
		// qmail's own way to retry with qmail-send running; it cannot pick messages.
		if err := m.Alarm(); err != nil {
			return fail("%v", err)
		}
		fmt.Fprintln(w, "qmail-send is running: sent it SIGALRM, so every deferred message is retried now")
		return 0
	}
	if err != nil {
		return fail("%v", err)
	}
	defer unlock()
	msgs, missing := selected() // under the lock: the selection cannot change under us
	if missing < 0 {
		return 111
	}
	op := map[string]func(uint64) error{"delete": m.Delete, "expire": m.Expire, "requeue": m.Requeue, "hold": m.Hold, "release": m.Release}[cmd]
	done := 0
	for _, msg := range msgs {
		if err := op(msg.ID); err != nil {
			fmt.Fprintf(stderr, "qmail-qmaint: %d: %v\n", msg.ID, err)
			missing++
			continue
		}
		done++
		fmt.Fprintf(w, "%s %d\n", pastTense[cmd], msg.ID)
	}
	if *stop {
		fmt.Fprintf(w, "%d messages changed; qmail-send was stopped, its supervisor restarts it\n", done)
	}
	return status(missing)
}

var pastTense = map[string]string{"delete": "deleted", "expire": "expired", "requeue": "requeued", "hold": "held", "release": "released"}

func orEmpty(m []Message) []Message {
	if m == nil {
		return []Message{}
	}
	return m
}

func writeJSON(w io.Writer, v any) {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	e.Encode(v)
}

func writeCounts(w io.Writer, c map[string]int) {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if c[keys[i]] != c[keys[j]] {
			return c[keys[i]] > c[keys[j]]
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		name := k
		if name == "" {
			name = "<>"
		}
		fmt.Fprintf(w, "%8d  %s\n", c[k], name)
	}
}

func (m *Manager) writeTable(w io.Writer, msgs []Message) {
	fmt.Fprintf(w, "%-10s %-6s %8s %9s  %s\n", "ID", "STATE", "AGE", "SIZE", "SENDER / RECIPIENTS")
	for _, msg := range msgs {
		flag := ""
		if msg.Bouncing {
			flag = "  bouncing"
		}
		fmt.Fprintf(w, "%-10d %-6s %8s %9d  <%s>%s\n", msg.ID, msg.State, FormatAge(m.Since(msg)), msg.Size, msg.Sender, flag)
		for _, r := range msg.Recipients {
			st := "pending"
			if r.Done {
				st = "done"
			}
			ch := r.Channel
			if ch == "" {
				ch = "-"
			}
			fmt.Fprintf(w, "%38s  %-6s %-7s <%s>\n", "", ch, st, r.Addr)
		}
	}
	fmt.Fprintf(w, "%d messages\n", len(msgs))
}

// FormatAge prints an age as 3d4h, 5h2m or 42s.
func FormatAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s >= 86400:
		return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
	case s >= 3600:
		return fmt.Sprintf("%dh%dm", s/3600, s%3600/60)
	case s >= 60:
		return fmt.Sprintf("%dm%ds", s/60, s%60)
	}
	return fmt.Sprintf("%ds", s)
}

// parseAge takes a Go duration, or a number of days as "3d".
func parseAge(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > 100000 {
			return 0, fmt.Errorf("bad age %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	a, err := time.ParseDuration(s)
	if err != nil || a < 0 {
		return 0, fmt.Errorf("bad age %q", s)
	}
	return a, nil
}
