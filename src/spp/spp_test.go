package spp

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// plugin writes a shell-script plugin into dir and returns its path relative to dir.
func plugin(t *testing.T, dir, name, body string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "plugins"), 0755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join("plugins", name)
	if err := os.WriteFile(filepath.Join(dir, p), []byte("#!/bin/sh\n"+body), 0755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParse(t *testing.T) {
	r := Parse([]byte("plugins/ignored\n# comment\n[connection]\nplugins/a\n\n[rcpt]   \nplugins/b\n:echo hi\n[unknown]\nplugins/c\n[helo]\nplugins/d\n"))
	want := map[Stage][]string{Connect: {"plugins/a"}, Rcpt: {"plugins/b", ":echo hi"}, Helo: {"plugins/d"}}
	if !reflect.DeepEqual(r.Sections, want) {
		t.Errorf("sections %v", r.Sections)
	}
}

func TestLoadMissing(t *testing.T) {
	r, err := Load(filepath.Join(t.TempDir(), "smtpplugins"))
	if r != nil || err != nil {
		t.Errorf("missing file: %v %v", r, err)
	}
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, script string
		check        func(Verdict) bool
	}{
		{"reject", `echo "E553 sorry, $SMTPRCPTTO is not welcome (#5.7.1)"`, func(v Verdict) bool {
			return v.Refuse && reflect.DeepEqual(v.Print, []string{"553 sorry, bad@example.org is not welcome (#5.7.1)"})
		}},
		{"print then next", "echo 'P250-note'\necho N\necho 'Eignored'", func(v Verdict) bool {
			return !v.Refuse && reflect.DeepEqual(v.Print, []string{"250-note"})
		}},
		{"ok skips checks", "echo O", func(v Verdict) bool { return v.NoChecks && !v.Refuse }},
		{"accept disables", "echo A", func(v Verdict) bool { return v.Disable }},
		{"drop", "echo D", func(v Verdict) bool { return v.Hangup && len(v.Print) == 0 }},
		{"reject and drop", "echo 'R421 go away'", func(v Verdict) bool { return v.Hangup && v.Print[0] == "421 go away" }},
		{"header, change, set, unset", "echo 'HX-Spam: yes'\necho Cspam@example.org\necho Sspam=1\necho UTCPREMOTEHOST\n", func(v Verdict) bool {
			return reflect.DeepEqual(v.Headers, []string{"X-Spam: yes"}) && v.Change == "spam@example.org" &&
				v.Set["spam"] == "1" && reflect.DeepEqual(v.Unset, []string{"TCPREMOTEHOST"})
		}},
		{"later", "echo 'LR550 no (#5.7.1)'\necho 'LMxx'\necho 'LD554 later'\necho LZ", func(v Verdict) bool {
			return v.Later[Rcpt] == "550 no (#5.7.1)" && v.Later[Mail] == "xx" && v.Later[Data] == "554 later" && len(v.Later) == 3
		}},
		{"exit 120", "exit 120", func(v Verdict) bool { return v.Err != nil && strings.Contains(v.Err.Error(), "can't execute") }},
		{"crash", "kill -9 $$", func(v Verdict) bool { return v.Err != nil && strings.Contains(v.Err.Error(), "crashed") }},
		{"other exit codes are ignored", "echo N; exit 1", func(v Verdict) bool { return v.Err == nil }},
		{"control characters", "printf 'E553 a\\rb\\000c\\n'", func(v Verdict) bool { return v.Print[0] == "553 a?b?c" }},
		{"huge output", "yes P250-x | head -c 10000000; echo N", func(v Verdict) bool { return v.Err == nil && len(v.Print) < 10000 }},
	}
	for _, c := range cases {
		p := plugin(t, dir, strings.ReplaceAll(c.name, " ", "_"), c.script)
		r := &Runner{Sections: map[Stage][]string{Rcpt: {p}}, Dir: dir}
		v := r.Run(Rcpt, []string{"TCPREMOTEIP=192.0.2.1"}, map[string]string{"SMTPRCPTTO": "bad@example.org"}, nil)
		if !c.check(v) {
			t.Errorf("%s: verdict %+v", c.name, v)
		}
	}
}

func TestChainAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	a := plugin(t, dir, "a", "echo Sfrom_a=1\necho UGONE\n")
	b := plugin(t, dir, "b", `echo "E550 a=$from_a gone=${GONE-unset} ip=$TCPREMOTEIP helo=$SMTPHELOHOST"`)
	c := plugin(t, dir, "c", "echo 'Enever reached'")
	r := &Runner{Sections: map[Stage][]string{Helo: {a, b, c}}, Dir: dir}
	v := r.Run(Helo, []string{"TCPREMOTEIP=192.0.2.1", "GONE=x", "KEPT=y"}, map[string]string{"SMTPHELOHOST": "h.example"}, map[string]bool{"KEPT": true})
	if len(v.Print) != 1 || v.Print[0] != "550 a=1 gone=unset ip=192.0.2.1 helo=h.example" {
		t.Errorf("verdict %+v", v)
	}
	// a shell command line, and a plugin that cannot run
	r = &Runner{Sections: map[Stage][]string{Data: {`:echo "E451 greylisted $KEPT"`}}, Dir: dir}
	if v := r.Run(Data, []string{"KEPT=y"}, nil, nil); v.Print[0] != "451 greylisted y" {
		t.Errorf("shell plugin: %+v", v)
	}
	r = &Runner{Sections: map[Stage][]string{Data: {"plugins/missing"}}, Dir: dir}
	if v := r.Run(Data, nil, nil, nil); v.Err == nil {
		t.Errorf("missing plugin ran: %+v", v)
	}
}

func TestTimeout(t *testing.T) {
	dir := t.TempDir()
	p := plugin(t, dir, "slow", "exec sleep 600")
	r := &Runner{Sections: map[Stage][]string{Mail: {p}}, Dir: dir, Timeout: 200 * time.Millisecond}
	if v := r.Run(Mail, nil, nil, nil); v.Err == nil || !strings.Contains(v.Err.Error(), "timed out") {
		t.Errorf("slow plugin: %+v", v)
	}
}

func TestNULInEnvironment(t *testing.T) {
	dir := t.TempDir()
	p := plugin(t, dir, "helo", `echo "E550 helo=$SMTPHELOHOST"`)
	r := &Runner{Sections: map[Stage][]string{Helo: {p}}, Dir: dir}
	v := r.Run(Helo, nil, map[string]string{"SMTPHELOHOST": "a\x00b", "BAD=NAME": "x"}, nil)
	if v.Err != nil || len(v.Print) != 1 || v.Print[0] != "550 helo=a" {
		t.Errorf("verdict %+v", v)
	}
}
