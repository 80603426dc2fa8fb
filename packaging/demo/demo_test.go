package demo

import (
	"bytes"
	"context"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/sandbox"
)

func newHomeStub() *sandbox.Home {
	return &sandbox.Home{Dir: "/demo", Bin: "/demo/bin", Domain: "sandbox.example"}
}

func TestMakePlanNamesWhatIsMissing(t *testing.T) {
	p := MakePlan([]string{"qmail-showctl", "qmail-smtpd"})
	if p.Delivery || !p.SMTP || p.Sendmail {
		t.Errorf("plan = %+v", p)
	}
	missing := strings.Join(p.Missing, " ")
	for _, m := range []string{"qmail-send", "qmail-start", "sendmail"} {
		if !strings.Contains(missing, m) {
			t.Errorf("missing %q does not name %s", missing, m)
		}
	}
	full := MakePlan(append(append([]string{}, Daemons...), "qmail-smtpd", "sendmail"))
	if !full.Delivery || !full.SMTP || !full.Sendmail || len(full.Missing) != 0 {
		t.Errorf("full plan = %+v", full)
	}
}

// What the demo says matches what it runs: a build without qmail-smtpd gets no
// SMTP instructions and is told so.
func TestDescribeNeverPromisesMissingPrograms(t *testing.T) {
	d := &Demo{Plan: MakePlan([]string{"sendmail"})}
	d.Home = newHomeStub()
	var b bytes.Buffer
	d.Describe(&b, "/")
	out := b.String()
	if strings.Contains(out, "swaks") || strings.Contains(out, "Running: qmail-smtpd") {
		t.Errorf("promises SMTP without qmail-smtpd:\n%s", out)
	}
	if !strings.Contains(out, "Nothing delivers yet") || !strings.Contains(out, "qmail-smtpd") {
		t.Errorf("does not say what is missing:\n%s", out)
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The demo as a user runs it: start, send a message over SMTP to the printed address,
// find it where the demo says it lands, stop.
func TestDemoDeliversOverSMTP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the MTA")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	parent, err := os.MkdirTemp("", "notqmail-demo-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(parent, 0o755) // the sandbox owner must reach the home
	defer os.RemoveAll(parent)
	var out bytes.Buffer
	o := Options{Root: root, Dir: filepath.Join(parent, "demo"), Bin: filepath.Join(parent, "bin"), Port: freePort(t), Out: &out}
	d, err := Start(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	defer func() {
		if err := d.Stop(); err != nil {
			t.Error(err)
		}
		d.Home.Remove()
	}()
	d.Describe(&out, root)
	if !d.Plan.SMTP || !d.Plan.Delivery {
		t.Skipf("this build cannot receive and deliver yet (missing %v); the demo says so:\n%s", d.Plan.Missing, out.String())
	}
	if !strings.Contains(out.String(), d.Addr) || !strings.Contains(out.String(), "home/alice/Maildir/new") {
		t.Fatalf("instructions lack the address or the Maildir:\n%s", out.String())
	}

	msg := "From: you@example.org\r\nTo: alice@" + d.Home.Domain + "\r\nSubject: demo test\r\n\r\nhello from the demo test\r\n"
	if err := smtp.SendMail(d.Addr, nil, "you@example.org", []string{"alice@" + d.Home.Domain}, []byte(msg)); err != nil {
		t.Fatalf("SMTP: %v", err)
	}
	deadline := time.Now().Add(guard) // a deadlock guard, not a speed expectation
	for {
		msgs, err := d.Home.Messages("alice")
		if err == nil && len(msgs) > 0 {
			if !bytes.Contains(msgs[0].Data, []byte("hello from the demo test")) {
				t.Errorf("delivered message:\n%s", msgs[0].Data)
			}
			break
		}
		if time.Now().After(deadline) {
			logs, _ := os.ReadFile(filepath.Join(d.Home.Dir, "log", "qmail-start"))
			t.Fatalf("no delivery to alice after %v; qmail-send log:\n%s", guard, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
