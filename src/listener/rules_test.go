package listener

import (
	"bufio"
	"net"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/notqmail/notqmail/src/testpeer"
)

const rulesText = `# relay for the office
127.0.0.1:allow,RELAYCLIENT="",X=/a b/
10.1.:deny
=host.example:allow,A='q'
10.2.3.1-3:allow,RANGE="yes"
10.2.3.2:deny
info@10.9.9.9:allow,WHO="ident"
2001:db8::1:allow,V6="1"
:allow,DATABYTES="100"
`

func TestParseRules(t *testing.T) {
	r, err := ParseRules(strings.NewReader(rulesText), "rules")
	if err != nil {
		t.Fatal(err)
	}
	checkRules(t, r)
}

// TestTcprulesCDB reads the cdb Debian's tcprules compiles from the same source and
// finds the same answers.
func TestTcprulesCDB(t *testing.T) {
	tcprules := testpeer.Need(t, "tcprules")
	dir := t.TempDir()
	cdbPath := filepath.Join(dir, "rules.cdb")
	// tcprules has no IPv6: leave that line out of its input.
	var v4 []string
	for _, l := range strings.Split(rulesText, "\n") {
		if !strings.HasPrefix(l, "2001:") {
			v4 = append(v4, l)
		}
	}
	cmd := exec.Command(tcprules, cdbPath, filepath.Join(dir, "rules.tmp"))
	cmd.Stdin = strings.NewReader(strings.Join(v4, "\n"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tcprules: %v\n%s", err, out)
	}
	r, err := LoadRules(cdbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.(*CDBRules).Close()
	checkRules(t, r)
}

func checkRules(t *testing.T, r Rules) {
	t.Helper()
	for _, c := range []struct {
		ip, host, info string
		deny           bool
		env            []EnvVar
	}{
		{"127.0.0.1", "", "", false, []EnvVar{{"RELAYCLIENT", ""}, {"X", "a b"}}},
		{"10.1.200.3", "", "", true, nil},
		{"10.2.3.1", "", "", false, []EnvVar{{"RANGE", "yes"}}},
		{"10.2.3.2", "", "", false, []EnvVar{{"RANGE", "yes"}}}, // the first line wins
		{"10.2.3.4", "", "", false, []EnvVar{{"DATABYTES", "100"}}},
		{"192.0.2.1", "host.example", "", false, []EnvVar{{"A", "q"}}},
		{"10.1.0.1", "host.example", "", false, []EnvVar{{"A", "q"}}}, // =host before ip prefixes
		{"10.9.9.9", "", "info", false, []EnvVar{{"WHO", "ident"}}},
		{"10.9.9.9", "", "", false, []EnvVar{{"DATABYTES", "100"}}},
	} {
		got, err := Match(r, c.ip, c.host, c.info)
		if err != nil {
			t.Fatal(err)
		}
		if got.Deny != c.deny || !reflect.DeepEqual(got.Env, c.env) {
			t.Errorf("%s/%s/%s: got %+v, want deny=%v %v", c.ip, c.host, c.info, got, c.deny, c.env)
		}
	}
	if _, ok := r.(TextRules); ok {
		got, _ := Match(r, "2001:db8::1", "", "")
		if !reflect.DeepEqual(got.Env, []EnvVar{{"V6", "1"}}) {
			t.Errorf("IPv6 rule: %+v", got)
		}
	}
}

func TestParseRulesErrors(t *testing.T) {
	for _, bad := range []string{"1.2.3.4\n", "1.2.3.4:maybe\n", "1.2.3.4:allow,X\n", "1.2.3.4:allow,X=\"a\n", "1.2.3.4:allow,X=\"a\"junk\n", "1.2.3.9-2:allow\n", "1.2.3.1-300:allow\n"} {
		if _, err := ParseRules(strings.NewReader(bad), "rules"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestLimitsAndDeny serves an echo handler: a denied client is closed without a word,
// a client over the per-address limit gets Refuse, the others get their variables.
func TestLimitsAndDeny(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var rules = TextRules{"127.0.0.1": {Env: []EnvVar{{"RELAYCLIENT", ""}}}}
	cfg := Config{
		MaxConns: 5, MaxPerIP: 2, Rules: rules,
		Refuse: func(c net.Conn) { c.Write([]byte("busy\n")) },
		Handle: func(c net.Conn, env []EnvVar, id string) {
			var names []string
			for _, e := range env {
				names = append(names, e.Name+"="+e.Value)
			}
			c.Write([]byte(strings.Join(names, " ") + "\n"))
			<-release
		},
	}
	done := make(chan error)
	go func() { done <- Serve(ln, cfg) }()
	read := func() string {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		l, _ := bufio.NewReader(c).ReadString('\n')
		return l
	}
	a, b := read(), read()
	for _, l := range []string{a, b} {
		if !strings.Contains(l, "TCPREMOTEIP=127.0.0.1") || !strings.Contains(l, "PROTO=TCP") || !strings.HasSuffix(l, "RELAYCLIENT=\n") {
			t.Errorf("env line %q", l)
		}
	}
	if c := read(); c != "busy\n" {
		t.Errorf("third connection from one address got %q", c)
	}
	close(release)
	ln.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// deny
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		Serve(ln2, Config{Rules: TextRules{"127.": {Deny: true}}, Handle: func(c net.Conn, _ []EnvVar, _ string) { c.Write([]byte("served\n")) }})
	}()
	c, err := net.Dial("tcp", ln2.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	l, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if l != "" {
		t.Errorf("denied client got %q", l)
	}
	ln2.Close()
	wg.Wait()
}
