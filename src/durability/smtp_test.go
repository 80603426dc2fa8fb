package durability

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/testpeer"
)

// TestSMTPFsyncFailureIs4xx runs a real SMTP client (swaks) against the home's
// qmail-smtpd, whose queue program ($QMAILQUEUE) is bin/qmail-queue under strace with
// its first fsync failing, and checks that the client hears a temporary failure (4xx)
// after DATA, never 250, and that nothing is queued.
func TestSMTPFsyncFailureIs4xx(t *testing.T) {
	swaks := testpeer.Need(t, "swaks")
	h := sandbox.New(t, sandbox.Options{})
	// The wrapper runs as the sandbox owner: its trace goes where that user may write.
	dir, err := os.MkdirTemp("", "notqmail-durability-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0777); err != nil {
		t.Fatal(err)
	}
	trace := filepath.Join(dir, "trace")
	argv := straceArgs(t, trace, injectFsync(1), filepath.Join(h.Bin, "qmail-queue"))
	wrapper := filepath.Join(dir, "qmail-queue-eio")
	script := "#!/bin/sh\nexec"
	for _, a := range argv {
		script += " '" + a + "'"
	}
	if err := os.WriteFile(wrapper, []byte(script+"\n"), 0755); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(swaks, "--pipe", filepath.Join(h.Bin, "qmail-smtpd"),
		"--from", "bob@far.example", "--to", "alice@"+h.Domain, "--helo", "client.example",
		"--body", "a message that must not be lost", "--timeout", "60")
	cmd.Env = append(h.Env(), "QMAILQUEUE="+wrapper, "TCPREMOTEIP=127.0.0.1", "TCPLOCALIP=127.0.0.1")
	cmd.Dir = h.Dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	transcript := out.String()
	if err != nil {
		t.Logf("swaks: %v", err) // it exits non-zero on a refused message
	}
	code, text := dataReply(t, transcript)
	t.Logf("reply to the end of DATA: %s %s", code, text)
	if !strings.HasPrefix(code, "4") {
		t.Errorf("qmail-queue's fsync failed, yet the reply to DATA is %s %s:\n%s", code, text, transcript)
	}
	tr := &traced{t: t, file: trace}
	ev := tr.load()
	if inj := injected(ev); inj == nil {
		t.Errorf("qmail-queue's fsync did not fail:\n%s", tr.dump())
	}
	if left := files(t, filepath.Join(h.Dir, "queue", "todo")); len(left) > 0 {
		t.Errorf("todo/ holds %v after the failed queueing", left)
	}
	if t.Failed() {
		t.Log(fmt.Sprint(argv))
	}
}

// dataReply finds, in a swaks transcript, the server's reply to the end of DATA: the
// first reply after the client's ".". It stops the test if there is none.
func dataReply(t *testing.T, transcript string) (code, text string) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^ -> \.\r?\n(?:.*\n)*?<\*{0,2} +(\d{3})[ -](.*)$`).FindStringSubmatch(transcript)
	if m == nil {
		t.Fatalf("no reply to the end of DATA:\n%s", transcript)
	}
	return m[1], m[2]
}
