package splogger

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type recorder struct{ msgs []string }

func (r *recorder) Log(pri int, msg string) error {
	r.msgs = append(r.msgs, fmt.Sprintf("%d %s", pri, msg))
	return nil
}

func TestRun(t *testing.T) {
	at := time.Unix(1700000000, 123456000)
	in := "status: local 0/10 remote 0/20\nwarning: trouble\nalert: oh no\nbad\x01byte\xff\n" +
		strings.Repeat("x", 1000) + "\npartial"
	r := &recorder{}
	Run(strings.NewReader(in), r, MailFac, func() time.Time { return at })
	want := []string{
		"22 1700000000.123456 status: local 0/10 remote 0/20",
		"20 1700000000.123456 warning: trouble",
		"17 1700000000.123456 alert: oh no",
		"22 1700000000.123456 bad?byte?",
		"22 1700000000.123456 " + strings.Repeat("x", 799),
		"22 1700000000.123456+" + strings.Repeat("x", 201),
	}
	if fmt.Sprint(r.msgs) != fmt.Sprint(want) {
		t.Errorf("got\n%q\nwant\n%q", r.msgs, want)
	}
}

func TestParseArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		tag  string
		fac  int
	}{
		{nil, "splogger", 2},
		{[]string{"qmail"}, "qmail", 2},
		{[]string{"qmail", "16"}, "qmail", 16},
		{[]string{"qmail", "x"}, "qmail", 0},
	} {
		tag, fac := ParseArgs(c.args)
		if tag != c.tag || fac != c.fac {
			t.Errorf("ParseArgs(%q) = %q,%d", c.args, tag, fac)
		}
	}
}

// TestSyslogSocket sends through a real unix datagram socket, as /dev/log is.
func TestSyslogSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := &Syslog{Path: path, Tag: "qmail"}
	Run(strings.NewReader("alert: cannot start\n"), s, MailFac, time.Now)
	buf := make([]byte, 2048)
	l.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := l.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	got := string(buf[:n])
	if !strings.HasPrefix(got, "<17>") || !strings.Contains(got, " qmail: ") || !strings.HasSuffix(got, " alert: cannot start") {
		t.Errorf("datagram %q", got)
	}
}
