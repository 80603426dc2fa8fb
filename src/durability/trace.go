package durability

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// TraceSyscalls is the -e trace= set the tests record: enough to see every file's
// writes, truncations and syncs, the links, renames and unlinks that publish or retract
// it, which program each process runs (execve) and how it ends.
const TraceSyscalls = "execve,openat,write,pwrite64,ftruncate,fsync,fdatasync,syncfs,sync,link,linkat,rename,renameat,renameat2,unlink,unlinkat,exit_group"

// Event is one system call (or process exit) from the output of
// `strace -f -tt -y -o FILE`, in the order strace wrote them.
type Event struct {
	Seq int // position in the trace: the order in which the calls completed
	// Start is the Seq of the first event that completed after this call began: a
	// write with a smaller Seq was done before it started. A call strace did not split
	// began after every earlier line's call had finished, so its Start is its Seq.
	Start    int
	PID      int    // the thread that made the call
	Call     string // "fsync", "linkat", ...; "+++" for a process exit line
	Args     string // the raw argument text, with -y's <path> decorations
	Ret      string // the raw return value: "0", "-1", "?"
	Errno    string // "EIO" when the call failed, else ""
	Injected bool   // strace injected the failure (-e inject=...)
	Exit     int    // for Call "+++": the exit status, -1 when killed by a signal
	Line     string // the whole line, for failure messages
}

// OK reports whether the call succeeded.
func (e Event) OK() bool { return e.Errno == "" && !strings.HasPrefix(e.Ret, "-1") }

func (e Event) String() string { return fmt.Sprintf("#%d %s", e.Seq, e.Line) }

// FDPath is the path -y printed for the first argument, a descriptor: "/q/mess/3/12"
// for "fsync(5</q/mess/3/12>)". It is "" when the first argument carries no path.
func (e Event) FDPath() string {
	p, _ := decoratedPath(e.Args)
	return p
}

// FD is the number of the first argument, a descriptor; -1 if it is not one.
func (e Event) FD() int {
	end := strings.IndexAny(e.Args, "<,)")
	if end < 0 {
		end = len(e.Args)
	}
	n, err := strconv.Atoi(strings.TrimSpace(e.Args[:end]))
	if err != nil {
		return -1
	}
	return n
}

// decoratedPath returns the text of the first <...> in s and what follows it.
func decoratedPath(s string) (string, string) {
	i := strings.IndexByte(s, '<')
	if i < 0 {
		return "", s
	}
	j := strings.IndexByte(s[i:], '>')
	if j < 0 {
		return "", s
	}
	return s[i+1 : i+j], s[i+j+1:]
}

// Paths returns the path names of a call's arguments, made absolute: a quoted name is
// resolved against the directory -y shows for the descriptor before it (AT_FDCWD or a
// directory descriptor of the *at calls), and cwd for the plain calls (link, rename,
// unlink), which strace shows undecorated. For linkat and renameat it returns the old
// and the new name.
func (e Event) Paths(cwd string) []string {
	var out []string
	dir := cwd
	s := e.Args
	for len(s) > 0 {
		switch {
		case strings.HasPrefix(s, "AT_FDCWD<") || (len(s) > 0 && s[0] >= '0' && s[0] <= '9' && strings.Contains(firstArg(s), "<")):
			p, rest := decoratedPath(s)
			dir, s = p, rest
		case strings.HasPrefix(s, "AT_FDCWD"):
			dir, s = cwd, s[len("AT_FDCWD"):]
		case s[0] == '"':
			name, rest, ok := unquote(s)
			if !ok {
				return out
			}
			if !filepath.IsAbs(name) {
				name = filepath.Join(dir, name)
			}
			out = append(out, filepath.Clean(name))
			s, dir = rest, cwd
		default:
			s = s[1:]
		}
	}
	return out
}

func firstArg(s string) string {
	if i := strings.IndexByte(s, ','); i >= 0 {
		return s[:i]
	}
	return s
}

// unquote reads a C-quoted string as strace prints it, at the start of s.
func unquote(s string) (string, string, bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			if i+1 >= len(s) {
				return "", "", false
			}
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'x':
				if i+2 < len(s) {
					if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
						b.WriteByte(byte(v))
						i += 2
						continue
					}
				}
				b.WriteByte('x')
			default:
				if s[i] >= '0' && s[i] <= '7' {
					j := i
					for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
						j++
					}
					v, _ := strconv.ParseUint(s[i:j], 8, 8)
					b.WriteByte(byte(v))
					i = j - 1
					continue
				}
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

// Data is the (possibly truncated, per strace -s) data of a write call.
func (e Event) Data() string {
	i := strings.IndexByte(e.Args, '"')
	if i < 0 {
		return ""
	}
	d, _, _ := unquote(e.Args[i:])
	return d
}

// callLine is a finished call: name(args) = result, strace padding the "=" with
// spaces to a column.
var callLine = regexp.MustCompile(`^([a-z_0-9]+)\((.*)\) +=(?: (.*))?$`)

// ParseTrace reads the output of strace -f -tt -y -o FILE. Calls that strace split
// into "<unfinished ...>" and "<... resumed>" halves are joined, in the position of
// their completion, which is when their effect is known to the caller.
func ParseTrace(r io.Reader) ([]Event, error) {
	var events []Event
	type unfinished struct {
		text  string
		start int // len(events) when the call began
	}
	pending := map[int]unfinished{} // pid -> the start of an unfinished call
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		pidText, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidText)
		if err != nil {
			continue
		}
		// strace pads the pid with spaces to a column, then the -tt time stamp.
		rest = strings.TrimLeft(rest, " ")
		if stamp, after, ok := strings.Cut(rest, " "); ok && strings.Count(stamp, ":") == 2 {
			rest = after
		}
		startSeq := len(events)
		switch {
		case strings.HasSuffix(rest, " <unfinished ...>"):
			pending[pid] = unfinished{strings.TrimSuffix(rest, " <unfinished ...>"), len(events)}
			continue
		case strings.HasPrefix(rest, "<... "):
			u, ok := pending[pid]
			start := u.text
			startSeq = u.start
			if !ok {
				return nil, fmt.Errorf("durability: resumed call without its start: %q", line)
			}
			delete(pending, pid)
			i := strings.Index(rest, " resumed>")
			if i < 0 {
				return nil, fmt.Errorf("durability: bad resumed line %q", line)
			}
			rest = start + rest[i+len(" resumed>"):]
			line = pidText + " " + rest // the joined call, for messages
		}
		ev := Event{PID: pid, Line: line, Start: startSeq}
		if n, ok := strings.CutPrefix(rest, "+++ superseded by execve in pid "); ok {
			// A thread other than the leader ran execve: the kernel gives it the
			// leader's pid, under which strace then resumes the call.
			if t, err := strconv.Atoi(strings.TrimSuffix(n, " +++")); err == nil {
				if u, ok := pending[t]; ok {
					delete(pending, t)
					pending[pid] = u
				}
			}
			continue
		}
		if strings.HasPrefix(rest, "+++ ") {
			ev.Call = "+++"
			ev.Exit = -1
			if n, ok := strings.CutPrefix(rest, "+++ exited with "); ok {
				ev.Exit, _ = strconv.Atoi(strings.TrimSuffix(n, " +++"))
			}
			ev.Seq = len(events)
			events = append(events, ev)
			continue
		}
		if strings.HasPrefix(rest, "---") { // signals
			continue
		}
		m := callLine.FindStringSubmatch(rest)
		if m == nil {
			if strings.HasPrefix(rest, "exit_group(") { // "= ?" may be missing at the end
				ev.Call, ev.Args, ev.Ret = "exit_group", strings.TrimSuffix(rest[len("exit_group("):], ")"), "?"
				ev.Seq = len(events)
				events = append(events, ev)
			}
			continue
		}
		ev.Call, ev.Args = m[1], m[2]
		result := m[3]
		if i := strings.IndexByte(result, ' '); i >= 0 {
			ev.Ret = result[:i]
			tail := result[i+1:]
			if ev.Ret == "-1" {
				ev.Errno, _, _ = strings.Cut(tail, " ")
			}
			ev.Injected = strings.HasSuffix(tail, "(INJECTED)")
		} else {
			ev.Ret = result
		}
		ev.Seq = len(events)
		events = append(events, ev)
	}
	return events, sc.Err()
}

// ReadTrace parses a trace file.
func ReadTrace(path string) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseTrace(f)
}

// Span is the part of a trace in which a name was a file's: the events numbered From
// up to but not including To.
type Span struct{ From, To int }

// Has reports whether event e lies in the span.
func (s Span) Has(e Event) bool { return e.Seq >= s.From && e.Seq < s.To }

// Names returns the names the file called path at event before had up to then, each
// with the span in which it was the file's: path itself and, walking back through the
// links and renames that made path or one of its earlier names, those earlier names,
// each from the call that created it (a link, a rename or an open with O_CREAT) to the
// rename that took it away. A name given by a link stays the file's to the end: a
// descriptor keeps the name it was opened under in -y's output even after that name
// is removed ("pid/1.2.1>(deleted)"). So a file's writes and syncs are found under any
// of these names, and only then: queue names and inodes are reused (spare files), so
// the same name may belong to another file before or after.
func Names(ev []Event, cwd, path string, before int) map[string]Span {
	before = min(max(before, 0), len(ev))
	spans := map[string]Span{}
	pending := map[string]int{path: before + 1} // name -> end of its span; creation not found yet
	for i := before - 1; i >= 0 && len(pending) > 0; i-- {
		e := ev[i]
		if !e.OK() {
			continue
		}
		switch {
		case IsLink(e):
			p := e.Paths(cwd)
			if len(p) != 2 {
				continue
			}
			to, ok := pending[p[1]]
			if !ok {
				continue
			}
			delete(pending, p[1])
			spans[p[1]] = Span{e.Seq, to}
			if _, seen := spans[p[0]]; seen {
				continue
			}
			if e.Call == "link" || e.Call == "linkat" {
				pending[p[0]] = before + 1
			} else {
				pending[p[0]] = e.Seq
			}
		case e.Call == "openat" && strings.Contains(e.Args, "O_CREAT"):
			p, _ := decoratedPath(e.Ret)
			if to, ok := pending[p]; ok {
				delete(pending, p)
				spans[p] = Span{e.Seq, to}
			}
		}
	}
	for p, to := range pending {
		spans[p] = Span{0, to}
	}
	return spans
}

// IsLink reports whether e gives a file a new name: a link or a rename of any flavour.
func IsLink(e Event) bool {
	switch e.Call {
	case "link", "linkat", "rename", "renameat", "renameat2":
		return true
	}
	return false
}

// IsSync reports whether e is a call that flushes a file: fsync or fdatasync.
func IsSync(e Event) bool { return e.Call == "fsync" || e.Call == "fdatasync" }

// IsSyncAll reports whether e is a call that flushes a whole file system, every file
// and directory in it: syncfs or sync. The tests' homes lie on one file system.
func IsSyncAll(e Event) bool { return e.Call == "syncfs" || e.Call == "sync" }

// SyncedBefore checks the durability rule for one file: it was written (at least one
// successful change, IsModify, through a descriptor naming the file, under any of its
// Names), and a successful fsync or fdatasync of it (or a syncfs) began after its last
// change and finished before the event numbered before. It returns that sync's Seq. A
// sync that was already running when the last write finished does not count: it may
// have written the file out before the write.
func SyncedBefore(ev []Event, cwd, path string, before int) (int, error) {
	if before > len(ev) {
		before = len(ev)
	}
	names := Names(ev, cwd, path, before)
	named := func(e Event) bool { s, ok := names[e.FDPath()]; return ok && s.Has(e) }
	lastWrite := -1
	for _, e := range ev[:max(before, 0)] {
		if IsModify(e) && named(e) && e.OK() {
			lastWrite = e.Seq
		}
	}
	if lastWrite < 0 {
		return -1, fmt.Errorf("no write to %s before #%d", path, before)
	}
	for _, e := range ev[lastWrite+1 : before] {
		if (IsSync(e) && named(e) || IsSyncAll(e)) && e.OK() && e.Start > lastWrite {
			return e.Seq, nil
		}
	}
	return -1, fmt.Errorf("%s is not fsynced after its last write (#%d) and before #%d", path, lastWrite, before)
}

// DirSyncedBetween checks that directory dir was fsynced (or its whole file system
// synced) successfully by a call that began after the event numbered after and
// finished before the one numbered before, and returns that call's Seq.
func DirSyncedBetween(ev []Event, dir string, after, before int) (int, error) {
	for _, e := range ev {
		if e.Start > after && e.Seq < before && (IsSync(e) && e.FDPath() == dir || IsSyncAll(e)) && e.OK() {
			return e.Seq, nil
		}
	}
	return -1, fmt.Errorf("directory %s is not fsynced between #%d and #%d", dir, after, before)
}

// IsModify reports whether e changes a file's contents through a descriptor: a write,
// a positioned write or a truncation (a reused file is cut to its new length).
func IsModify(e Event) bool {
	return e.Call == "write" || e.Call == "pwrite64" || e.Call == "ftruncate"
}
