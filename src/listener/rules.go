// Package listener accepts TCP connections for a UCSPI-style server without
// tcpserver: it enforces a connection limit and a per-address limit, applies access
// rules in tcprules(1) format, and hands each allowed connection to a handler with
// the environment tcpserver would have set (TCPREMOTEIP, TCPLOCALIP, ..., and the
// rule's variables such as RELAYCLIENT).
package listener

import (
	"bufio"
	"bytes"

	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/notqmail/notqmail/src/cdb"
)

// Rule is what a rule says about a client: deny, or allow with variables to set.
type Rule struct {
	Deny bool
	Env  []EnvVar // in the order the rule lists them
}

// EnvVar is one variable a rule sets.
type EnvVar struct{ Name, Value string }

// Rules finds the rule for a client. Both the text format and the cdb that Debian's
// tcprules compiles from it are read.
type Rules interface {
	lookup(key string) (Rule, bool, error)
}

// Match finds the rule that applies to a client, trying keys in tcpserver's order:
// info@ip, info@=host, ip, =host, each prefix of ip ending in '.' (or ':' for IPv6),
// =.suffix for each suffix of host, "=", and finally the empty default key. A client
// no rule matches is allowed with no variables, as with tcpserver.
func Match(r Rules, ip, host, info string) (Rule, error) {
	var keys []string
	if info != "" {
		keys = append(keys, info+"@"+ip)
		if host != "" {
			keys = append(keys, info+"@="+host)
		}
	}
	keys = append(keys, ip)
	if host != "" {
		keys = append(keys, "="+host)
	}
	for i := len(ip) - 1; i > 0; i-- {
		if ip[i-1] == '.' || ip[i-1] == ':' {
			keys = append(keys, ip[:i])
		}
	}
	if host != "" {
		for i := 0; i < len(host); i++ {
			if host[i] == '.' {
				keys = append(keys, "="+host[i:])
			}
		}
		keys = append(keys, "=")
	}
	keys = append(keys, "")
	for _, k := range keys {
		rule, ok, err := r.lookup(k)
		if err != nil || ok {
			return rule, err
		}
	}
	return Rule{}, nil
}

// TextRules are rules read from a tcprules source file.
type TextRules map[string]Rule

func (t TextRules) lookup(k string) (Rule, bool, error) {
	r, ok := t[k]
	return r, ok, nil
}

// maxRulesLine bounds one line of a rules file.
const maxRulesLine = 64 * 1024

// ParseRules reads the tcprules text format: "address:allow" or "address:deny",
// optionally followed by ",NAME=<d>value<d>" settings where <d> is any delimiter
// character ("RELAYCLIENT=\"\""). The address is an IP, an IP prefix ending in '.',
// "=host", "=.domain", "info@ip", a last-component range "10.1.2.3-30", or empty for
// the default. Blank lines and lines starting with '#' are skipped. When a key
// appears twice, the first line wins, as in the cdb tcprules builds.
func ParseRules(r io.Reader, name string) (TextRules, error) {
	rules := TextRules{}
	br := bufio.NewReaderSize(r, 4096)
	for n := 1; ; n++ {
		line, err := br.ReadString('\n')
		if len(line) > maxRulesLine {
			return nil, fmt.Errorf("%s:%d: line too long", name, n)
		}
		if line == "" && err != nil {
			if err == io.EOF {
				return rules, nil
			}
			return nil, err
		}
		text := strings.TrimRight(line, "\r\n")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		addr, instr, ok := splitRule(text)
		if !ok {
			return nil, fmt.Errorf("%s:%d: expected address:allow or address:deny", name, n)
		}
		rule, err := parseInstructions(instr)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
		keys, err := expandRange(addr)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
		for _, k := range keys {
			if _, dup := rules[k]; !dup {
				rules[k] = rule
			}
		}
	}
}

// splitRule splits at the first ":allow" or ":deny" that ends or is followed by ',':
// IPv6 keys hold colons of their own.
func splitRule(text string) (addr, instr string, ok bool) {
	for i := 0; i < len(text); i++ {
		if text[i] != ':' {
			continue
		}
		for _, a := range []string{"allow", "deny"} {
			rest := text[i+1:]
			if strings.HasPrefix(rest, a) && (len(rest) == len(a) || rest[len(a)] == ',') {
				return text[:i], rest, true
			}
		}
	}
	return "", "", false
}

func parseInstructions(s string) (Rule, error) {
	action, rest, _ := strings.Cut(s, ",")
	var r Rule
	switch strings.TrimSpace(action) {
	case "allow":
	case "deny":
		r.Deny = true
	default:
		return Rule{}, fmt.Errorf("unknown action %q (allow or deny)", action)
	}
	for rest != "" {
		name, after, ok := strings.Cut(rest, "=")
		if !ok || name == "" || strings.ContainsAny(name, ",\x00") {
			return Rule{}, fmt.Errorf("bad setting %q", rest)
		}
		if after == "" {
			return Rule{}, fmt.Errorf("setting %s has no delimiter", name)
		}
		d := after[0]
		end := strings.IndexByte(after[1:], d)
		if end < 0 {
			return Rule{}, fmt.Errorf("setting %s: unterminated value", name)
		}
		val := after[1 : 1+end]
		if strings.IndexByte(val, 0) >= 0 {
			return Rule{}, fmt.Errorf("setting %s: NUL in value", name)
		}
		r.Env = append(r.Env, EnvVar{name, val})
		rest = after[2+end:]
		if rest != "" {
			if rest[0] != ',' {
				return Rule{}, fmt.Errorf("junk after setting %s: %q", name, rest)
			}
			rest = rest[1:]
		}
	}
	return r, nil
}

// expandRange turns "1.2.3.4-7" into its keys; anything else is one key.
func expandRange(addr string) ([]string, error) {
	dot := strings.LastIndexByte(addr, '.')
	dash := strings.LastIndexByte(addr, '-')
	if strings.HasPrefix(addr, "=") || dash < 0 || dash < dot || strings.ContainsAny(addr, "@:") {
		return []string{addr}, nil
	}
	lo, err1 := strconv.Atoi(addr[dot+1 : dash])
	hi, err2 := strconv.Atoi(addr[dash+1:])
	if err1 != nil || err2 != nil || lo < 0 || hi > 255 || lo > hi {
		return nil, fmt.Errorf("bad range %q", addr)
	}
	var keys []string
	for i := lo; i <= hi; i++ {
		keys = append(keys, addr[:dot+1]+strconv.Itoa(i))
	}
	return keys, nil
}

// CDBRules are rules compiled by tcprules(1) into a cdb.
type CDBRules struct {
	r    *cdb.Reader
	path string
}

// OpenCDB opens a cdb compiled by tcprules.
func OpenCDB(path string) (*CDBRules, error) {
	r, err := cdb.Open(path)
	if err != nil {
		return nil, err
	}
	return &CDBRules{r: r, path: path}, nil
}

// Close closes the cdb.
func (c *CDBRules) Close() error { return c.r.Close() }

// lookup decodes tcprules' record: "D" denies; otherwise a sequence of
// "+NAME=value\0" settings.
func (c *CDBRules) lookup(k string) (Rule, bool, error) {
	data, ok, err := c.r.Get([]byte(k))
	if err != nil || !ok {
		return Rule{}, false, err
	}
	if len(data) > 0 && data[0] == 'D' {
		return Rule{Deny: true}, true, nil
	}
	var r Rule
	for _, item := range bytes.Split(data, []byte{0}) {
		if len(item) == 0 {
			continue
		}
		if item[0] != '+' {
			return Rule{}, false, fmt.Errorf("%s: unknown instruction %q for key %q", c.path, item, k)
		}
		name, val, _ := strings.Cut(string(item[1:]), "=")
		r.Env = append(r.Env, EnvVar{name, val})
	}
	return r, true, nil
}

// LoadRules reads a rules file: a cdb made by tcprules when its name ends in ".cdb",
// else the text format.
func LoadRules(path string) (Rules, error) {
	if strings.HasSuffix(path, ".cdb") {
		return OpenCDB(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseRules(f, path)
}
