package spawn

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/users"
)

// echoRunner reports the delivery's arguments, so the protocol tests see what reached
// the runner.
type echoRunner struct {
	mu   sync.Mutex
	seen []string
}

func (e *echoRunner) Deliver(mess *os.File, sender, recip string, at int) []byte {
	b, _ := io.ReadAll(mess)
	e.mu.Lock()
	e.seen = append(e.seen, recip)
	e.mu.Unlock()
	return []byte(fmt.Sprintf("K%s|%s|%s|%d", b, sender, recip, at))
}

type report struct {
	slot int
	text string
}

func runServer(t *testing.T, s *Server, input string) (byte, []report) {
	t.Helper()
	var out bytes.Buffer
	if err := s.Serve(strings.NewReader(input), &out); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(&out)
	limit, err := br.ReadByte()
	if err != nil {
		t.Fatal("no announcement")
	}
	var reps []report
	for {
		slot, err := br.ReadByte()
		if err != nil {
			break
		}
		text, err := br.ReadString(0)
		if err != nil {
			t.Fatalf("unterminated report %q", text)
		}
		reps = append(reps, report{int(slot), strings.TrimSuffix(text, "\x00")})
	}
	sort.Slice(reps, func(i, j int) bool { return reps[i].slot < reps[j].slot })
	return limit, reps
}

func cmd(slot byte, messid, sender, recip string) string {
	return string([]byte{slot}) + messid + "\x00" + sender + "\x00" + recip + "\x00"
}

func TestServerProtocol(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "3"), 0700)
	os.WriteFile(filepath.Join(dir, "3", "26"), []byte("MSG"), 0600)
	os.MkdirAll(filepath.Join(dir, "4", "27"), 0700) // a directory, not a message
	r := &echoRunner{}
	s := &Server{MessDir: dir, OwnerUID: -1, Runner: r}
	in := cmd(0, "3/26", "joe@a", "bob@b") +
		cmd(1, "3/x6", "joe@a", "bob@b") +
		cmd(2, "3/26", "joe@a", "nohost") +
		cmd(3, "3/99", "joe@a", "bob@b") +
		cmd(4, "4/27", "joe@a", "bob@b") +
		cmd(5, "", "joe@a", "bob@b") +
		cmd(6, strings.Repeat("1", 120), "joe@a", "bob@b") +
		cmd(200, "3/26", "joe@a", "bob@b") +
		cmd(7, "3/26", "", "@b") +
		cmd(8, "3/26", "x", "a@b@c")
	limit, reps := runServer(t, s, in)
	if limit != Limit {
		t.Errorf("announced %d", limit)
	}
	want := []report{
		{0, "KMSG|joe@a|bob@b|3"},
		{1, "DInternal error: messid has nonnumerics. (#5.3.5)\n"},
		{2, "DSorry, address must include host name. (#5.1.3)\n"},
		{3, "Zqmail-spawn unable to open message. (#4.3.0)\n"},
		{4, "ZSorry, message has wrong type. (#4.3.5)\n"},
		{5, "DInternal error: messid too short. (#5.3.5)\n"},
		{6, "DInternal error: messid too long. (#5.3.5)\n"},
		{7, "KMSG||@b|0"},
		{8, "KMSG|x|a@b@c|3"},
		{200, "ZInternal error: delnum too big. (#4.3.5)\n"},
	}
	if fmt.Sprint(reps) != fmt.Sprint(want) {
		t.Errorf("reports\n%+v\nwant\n%+v", reps, want)
	}
}

func TestServerOwnerCheck(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "1"), 0700)
	os.WriteFile(filepath.Join(dir, "1", "24"), []byte("MSG"), 0600)
	s := &Server{MessDir: dir, OwnerUID: os.Getuid() + 1, Runner: &echoRunner{}}
	_, reps := runServer(t, s, cmd(0, "1/24", "a@b", "c@d"))
	if len(reps) != 1 || reps[0].text != "ZSorry, message has wrong owner. (#4.3.5)\n" {
		t.Errorf("%+v", reps)
	}
	s.OwnerUID = os.Getuid()
	_, reps = runServer(t, s, cmd(0, "1/24", "a@b", "c@d"))
	if len(reps) != 1 || reps[0].text[0] != 'K' {
		t.Errorf("%+v", reps)
	}
}

// The delivery reads the message without changing its access time: a change would
// dirty the inode of a file just synced, for the next sync to write again.
func TestServerOpensMessageNoatime(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "1"), 0700)
	p := filepath.Join(dir, "1", "24")
	os.WriteFile(p, []byte("MSG"), 0600)
	old := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(p, old, time.Now()); err != nil {
		t.Fatal(err)
	}
	s := &Server{MessDir: dir, OwnerUID: -1, Runner: &echoRunner{}}
	_, reps := runServer(t, s, cmd(0, "1/24", "a@b", "c@d"))
	if len(reps) != 1 || !strings.HasPrefix(reps[0].text, "KMSG") {
		t.Fatalf("%+v: the runner did not read the message", reps)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if at := time.Unix(st.Atim.Sec, st.Atim.Nsec); !at.Equal(old) {
		t.Errorf("access time %v after the delivery, want %v unchanged", at, old)
	}
}

func TestLocalReport(t *testing.T) {
	cases := []struct {
		code    int
		crashed bool
		out     string
		want    string
	}{
		{0, false, "did 0+0+1\n", "Kdid 0+0+1\n"},
		{111, false, "Temporary error.\n", "ZTemporary error.\n"},
		{71, false, "x", "Zx"},
		{100, false, "Sorry.\x00ignored", "DSorry."},
		{99, false, "odd", "Dodd"},
		{0, true, "", "Zqmail-local crashed.\n"},
		{QLXCDB, false, "", "ZTrouble reading users/cdb in qmail-lspawn.\n"},
		{QLXExecHard, false, "", "DUnable to run qmail-local.\n"},
		{QLXRoot, false, "", "ZNot allowed to perform deliveries as root.\n"},
	}
	for _, c := range cases {
		if got := string(LocalReport(c.code, c.crashed, []byte(c.out))); got != c.want {
			t.Errorf("LocalReport(%d,%v,%q) = %q, want %q", c.code, c.crashed, c.out, got, c.want)
		}
	}
}

func TestRemoteReport(t *testing.T) {
	cases := []struct {
		code int
		out  string
		want string
	}{
		{0, "r\x00Kmx.example accepted message.\nRemote host said: 250 ok\n\x00", "Kmx.example accepted message.\nRemote host said: 250 ok\n"},
		{0, "rOK\x00Kdone\x00", "KOKdone"},
		{0, "hSorry, no mailbox (#5.1.1)\n\x00DGiving up.\n\x00", "DSorry, no mailbox (#5.1.1)\nGiving up.\n"},
		{0, "sTry later\n\x00ZConnection closed\n\x00", "ZTry later\nConnection closed\n"},
		{0, "\x00Zmx.example does not like recipient.\n\x00", "ZZmx.example does not like recipient.\n"},
		{0, "rOK\x00Zbut the message failed\n\x00", "ZOKbut the message failed\n"},
		{0, "", "Zqmail-remote produced no output.\n"},
		{111, "whatever", "ZUnable to run qmail-remote.\n"},
		{100, "", "DUnable to run qmail-remote.\n"},
	}
	for _, c := range cases {
		if got := string(RemoteReport(c.code, false, []byte(c.out))); got != c.want {
			t.Errorf("RemoteReport(%d,%q) = %q, want %q", c.code, c.out, got, c.want)
		}
	}
	if got := string(RemoteReport(0, true, nil)); got != "Zqmail-remote crashed.\n" {
		t.Errorf("crash: %q", got)
	}
}

// fakeHome is a qmail home with shell-script qmail-getpw and qmail-local that show
// what qmail-lspawn passes them. The real programs are exercised end to end by the
// start package's tests.
func fakeHome(t *testing.T) string {
	t.Helper()
	h := t.TempDir()
	os.MkdirAll(filepath.Join(h, "bin"), 0755)
	os.MkdirAll(filepath.Join(h, "users"), 0755)
	getpw := `#!/bin/sh
case "$1" in
  nobody*) exit 111 ;;
  rootly) printf 'root\0000\0000\000/root\000\000\000' ;;
  *) printf 'u%s\000%s\000%s\000/home/u\000-\000%s\000' "$1" 1234 5678 ext ;;
esac
`
	local := `#!/bin/sh
cat >/dev/null
echo "args: $*"
case "$4" in
  temp*) echo "Try again." ; exit 111 ;;
  perm*) echo "No such user." ; exit 100 ;;
  crash*) kill -9 $$ ;;
  bg*) sleep 3600 & echo $! >"$BGPIDFILE"; echo "left one behind"; exit 0 ;;
  long*) i=0; while [ $i -lt 500 ]; do echo "0123456789"; i=$((i+1)); done; exit 100 ;;
esac
exit 0
`
	os.WriteFile(filepath.Join(h, "bin", "qmail-getpw"), []byte(getpw), 0755)
	os.WriteFile(filepath.Join(h, "bin", "qmail-local"), []byte(local), 0755)
	return h
}

func deliverLocal(t *testing.T, l *Local, sender, recip string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "mess")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("Subject: x\n\nhi\n")
	f.Seek(0, 0)
	defer f.Close()
	return string(l.Deliver(f, sender, recip, strings.LastIndexByte(recip, '@')))
}

func TestLocalDeliver(t *testing.T) {
	h := fakeHome(t)
	l := &Local{Home: h, DefaultDelivery: "./Maildir/", Sandbox: true}
	if got, want := deliverLocal(t, l, "joe@a", "bob-x@here"), "Kargs: -- ubob-x /home/u bob-x - ext here joe@a ./Maildir/\n"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
	if got := deliverLocal(t, l, "joe@a", "temp@here"); !strings.HasPrefix(got, "Zargs:") || !strings.HasSuffix(got, "Try again.\n") {
		t.Errorf("temp: %q", got)
	}
	if got := deliverLocal(t, l, "joe@a", "perm@here"); !strings.HasPrefix(got, "D") || !strings.HasSuffix(got, "No such user.\n") {
		t.Errorf("perm: %q", got)
	}
	if got := deliverLocal(t, l, "joe@a", "crash@here"); got != "Zqmail-local crashed.\n" {
		t.Errorf("crash: %q", got)
	}
	if got := deliverLocal(t, l, "joe@a", "nobody@here"); got != "Z" {
		t.Errorf("getpw temporary failure: %q", got)
	}
	if got := deliverLocal(t, l, "joe@a", "@here"); got != "K" {
		t.Errorf("empty local part: %q", got)
	}
	if got := deliverLocal(t, l, "joe@a", "long@here"); len(got) > truncReport || !strings.HasSuffix(got, "\nError report too long, sorry.\n") {
		t.Errorf("long report (%d bytes) ends %q", len(got), got[max(0, len(got)-40):])
	}
	l.Sandbox = false
	if got := deliverLocal(t, l, "joe@a", "rootly@here"); got != "ZNot allowed to perform deliveries as root.\n" {
		t.Errorf("root: %q", got)
	}
	l.Sandbox = true
	os.Remove(filepath.Join(h, "bin", "qmail-local"))
	if got := deliverLocal(t, l, "joe@a", "bob@here"); got != "DUnable to run qmail-local.\n" {
		t.Errorf("missing qmail-local: %q", got)
	}
	os.Remove(filepath.Join(h, "bin", "qmail-getpw"))
	if got := deliverLocal(t, l, "joe@a", "bob@here"); got != "ZUnable to run qmail-getpw.\n" {
		t.Errorf("missing qmail-getpw: %q", got)
	}
}

func TestLocalUsersCDB(t *testing.T) {
	h := fakeHome(t)
	assign := "=bob:alice:1001:1002:/home/alice:-:box:\n+list-:lists:1003:1004:/home/lists:-::\n.\n"
	os.WriteFile(filepath.Join(h, "users", "assign"), []byte(assign), 0644)
	if err := users.NewU(filepath.Join(h, "users", "assign"), filepath.Join(h, "users", "cdb")); err != nil {
		t.Fatal(err)
	}
	l := &Local{Home: h, DefaultDelivery: "./Mailbox", Sandbox: true}
	if got, want := deliverLocal(t, l, "s@x", "BOB@here"), "Kargs: -- alice /home/alice BOB - box here s@x ./Mailbox\n"; got != want {
		t.Errorf("exact: got %q want %q", got, want)
	}
	if got, want := deliverLocal(t, l, "s@x", "list-Foo@here"), "Kargs: -- lists /home/lists list-Foo - Foo here s@x ./Mailbox\n"; got != want {
		t.Errorf("wildcard: got %q want %q", got, want)
	}
	// Not in users/cdb: qmail-getpw answers.
	if got := deliverLocal(t, l, "s@x", "carol@here"); !strings.HasPrefix(got, "Kargs: -- ucarol ") {
		t.Errorf("fallback: %q", got)
	}
	os.WriteFile(filepath.Join(h, "users", "cdb"), []byte("garbage"), 0644)
	if got := deliverLocal(t, l, "s@x", "bob@here"); got != "ZTrouble reading users/cdb in qmail-lspawn.\n" {
		t.Errorf("damaged cdb: %q", got)
	}
}

func TestRemoteDeliver(t *testing.T) {
	h := t.TempDir()
	prog := filepath.Join(h, "fake-remote")
	os.WriteFile(prog, []byte("#!/bin/sh\nprintf 'r\\000Khost %s from %s to %s:' \"$1\" \"$2\" \"$3\"; cat; printf '\\000'\n"), 0755)
	r := &Remote{Program: prog, Dir: h}
	f, _ := os.CreateTemp(h, "m")
	f.WriteString("BODY")
	f.Seek(0, 0)
	got := string(r.Deliver(f, "joe@a", "bob@b.example", 3))
	if got != "Khost b.example from joe@a to bob@b.example:BODY" {
		t.Errorf("got %q", got)
	}
	r.Program = filepath.Join(h, "missing")
	if got := string(r.Deliver(f, "joe@a", "bob@b.example", 3)); got != "ZUnable to run qmail-remote.\n" {
		t.Errorf("missing program: %q", got)
	}
	r.Program = "no-such-qmail-remote-anywhere"
	if got := string(r.Deliver(f, "joe@a", "bob@b.example", 3)); got != "ZUnable to run qmail-remote.\n" {
		t.Errorf("missing program in PATH: %q", got)
	}
}

func TestRemoteProgram(t *testing.T) {
	h := t.TempDir()
	t.Setenv("QMAILREMOTE", "")
	if got := RemoteProgram(h); got != "qmail-remote" {
		t.Errorf("no bin/qmail-remote: %q", got)
	}
	os.MkdirAll(filepath.Join(h, "bin"), 0755)
	os.WriteFile(filepath.Join(h, "bin", "qmail-remote"), nil, 0755)
	if got := RemoteProgram(h); got != filepath.Join(h, "bin", "qmail-remote") {
		t.Errorf("bin/qmail-remote: %q", got)
	}
	t.Setenv("QMAILREMOTE", "/opt/x/remote")
	if got := RemoteProgram(h); got != "/opt/x/remote" {
		t.Errorf("QMAILREMOTE: %q", got)
	}
}

func TestCleanTCPTo(t *testing.T) {
	q := t.TempDir()
	os.MkdirAll(filepath.Join(q, "lock"), 0755)
	p := filepath.Join(q, "lock", "tcpto")
	os.WriteFile(p, bytes.Repeat([]byte{7}, 1024), 0644)
	CleanTCPTo(q)
	b, _ := os.ReadFile(p)
	if !bytes.Equal(b, make([]byte, 1024)) {
		t.Error("tcpto not zeroed")
	}
}

// A program that qmail-local leaves running in the background (a .qmail line such as
// "|daemon &") keeps the report pipe open; the delivery must still end once
// qmail-local has, or a few such messages hold every local delivery slot.
func TestLocalDeliverBackgroundChildDoesNotHoldSlot(t *testing.T) {
	h := fakeHome(t)
	pidfile := filepath.Join(t.TempDir(), "bgpid")
	t.Setenv("BGPIDFILE", pidfile)
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidfile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	l := &Local{Home: h, DefaultDelivery: "./Maildir/", Sandbox: true}
	done := make(chan string, 1)
	go func() { done <- deliverLocal(t, l, "joe@a", "bg@here") }()
	select {
	case got := <-done:
		if !strings.HasPrefix(got, "K") || !strings.HasSuffix(got, "left one behind\n") {
			t.Errorf("got %q", got)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("delivery still waiting for a background process's output")
	}
}
