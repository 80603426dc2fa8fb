package durability

import (
	"strings"
	"testing"
)

// A trace in strace's own words: a message written through a descriptor opened under
// a pid/ name that is then linked to mess/ and removed, a call split by another
// thread, and an injected failure.
const sampleTrace = `100 02:00:00.000001 openat(AT_FDCWD</q>, "pid/1.2.1", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0644) = 7</q/pid/1.2.1>
100 02:00:00.000002 linkat(AT_FDCWD</q>, "pid/1.2.1", AT_FDCWD</q>, "mess/3/42", 0) = 0
100 02:00:00.000003 unlinkat(AT_FDCWD</q>, "pid/1.2.1", 0) = 0
100 02:00:00.000004 write(7</q/pid/1.2.1>(deleted), "Received: x\nSubject: \"y\"\n", 26 <unfinished ...>
101 02:00:00.000005 write(2<pipe:[9]>, "other thread", 12) = 12
100 02:00:00.000006 <... write resumed>) = 26
100 02:00:00.000007 fsync(7</q/pid/1.2.1>(deleted)) = 0
100   02:00:00.000008 write(8</q/intd/42>, "u0\0", 3) = 3
100 02:00:00.000009 fsync(8</q/intd/42>) = -1 EIO (Input/output error) (INJECTED)
100 02:00:00.000010 linkat(AT_FDCWD</q>, "intd/42", AT_FDCWD</q>, "todo/42", 0) = 0
100 02:00:00.000011 exit_group(53)                  = ?
101 02:00:00.000012 +++ exited with 53 +++
`

func TestParseTrace(t *testing.T) {
	ev, err := ParseTrace(strings.NewReader(sampleTrace))
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 11 {
		t.Fatalf("%d events, want 11: %v", len(ev), ev)
	}
	if w := ev[4]; w.Call != "write" || w.FDPath() != "/q/pid/1.2.1" || w.Ret != "26" || w.Data() != "Received: x\nSubject: \"y\"\n" || w.FD() != 7 {
		t.Errorf("joined write: %+v (data %q)", w, w.Data())
	}
	if p := ev[1].Paths("/elsewhere"); len(p) != 2 || p[0] != "/q/pid/1.2.1" || p[1] != "/q/mess/3/42" {
		t.Errorf("linkat paths %q", p)
	}
	if f := ev[7]; f.OK() || f.Errno != "EIO" || !f.Injected {
		t.Errorf("injected fsync: %+v", f)
	}
	if e := ev[9]; e.Call != "exit_group" || e.Args != "53" {
		t.Errorf("exit_group: %+v", e)
	}
	if e := ev[10]; e.Call != "+++" || e.Exit != 53 {
		t.Errorf("exit line: %+v", e)
	}
	if n := Names(ev, "/", "/q/mess/3/42", 3); n["/q/pid/1.2.1"] != (Span{0, 4}) || n["/q/mess/3/42"] != (Span{1, 4}) || len(n) != 2 {
		t.Errorf("names of mess/3/42: %v", n)
	}
}

// The checks must catch what they look for: they pass on the synced mess file and
// fail on the intd file, whose only fsync failed, and on a sync that comes too late.
func TestSyncChecks(t *testing.T) {
	ev, err := ParseTrace(strings.NewReader(sampleTrace))
	if err != nil {
		t.Fatal(err)
	}
	if seq, err := SyncedBefore(ev, "/q", "/q/mess/3/42", 8); err != nil || seq != 5 {
		t.Errorf("mess: sync #%d, %v", seq, err)
	}
	if _, err := SyncedBefore(ev, "/q", "/q/intd/42", 8); err == nil {
		t.Error("intd passed although its fsync failed")
	}
	if _, err := SyncedBefore(ev, "/q", "/q/mess/3/42", 5); err == nil {
		t.Error("mess passed with the limit before its fsync")
	}
	if _, err := SyncedBefore(ev, "/q", "/q/todo/42", 10); err == nil {
		t.Error("a file never written passed")
	}
	if _, err := DirSyncedBetween(ev, "/q/todo", 8, 10); err == nil {
		t.Error("todo/ passed without a sync")
	}
}

// A file cut to length after its sync is not synced: a reused file's old tail could
// come back.
func TestSyncCheckSeesTruncation(t *testing.T) {
	const tr = `7 02:00:00.000001 pwrite64(4</q/info/1/9>, "Fa@b\0", 5, 0) = 5
7 02:00:00.000002 fsync(4</q/info/1/9>) = 0
7 02:00:00.000003 ftruncate(4</q/info/1/9>, 5) = 0
7 02:00:00.000004 unlinkat(AT_FDCWD</q>, "todo/9", 0) = 0
`
	ev, err := ParseTrace(strings.NewReader(tr))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SyncedBefore(ev, "/q", "/q/info/1/9", 3); err == nil {
		t.Error("a truncation after the sync passed")
	}
	if seq, err := SyncedBefore(ev, "/q", "/q/info/1/9", 1); err == nil {
		t.Errorf("the check passed with the limit at the sync itself (#%d)", seq)
	}
}

// Names reused by other files, later or earlier, are not the file's: local/1/5 is made
// from a spare, and another file, stashed afterwards under the same spare name, was
// local/2/6 before.
func TestNamesFollowTime(t *testing.T) {
	const tr = `7 02:00:00.000001 openat(AT_FDCWD</q>, "/q/local/2/6", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0644) = 3</q/local/2/6>
7 02:00:00.000002 write(3</q/local/2/6>, "Ta@b\0", 5) = 5
7 02:00:00.000003 renameat(AT_FDCWD</q>, "/q/spare/s/77", AT_FDCWD</q>, "/q/local/1/5") = 0
7 02:00:00.000004 write(4</q/local/1/5>, "Tc@d\0", 5) = 5
7 02:00:00.000005 fsync(4</q/local/1/5>) = 0
7 02:00:00.000006 pwrite64(3</q/local/2/6>, "D", 1, 0) = 1
7 02:00:00.000007 renameat(AT_FDCWD</q>, "/q/local/2/6", AT_FDCWD</q>, "/q/spare/s/77") = 0
7 02:00:00.000008 unlinkat(AT_FDCWD</q>, "todo/5", 0) = 0
7 02:00:00.000009 renameat(AT_FDCWD</q>, "/q/spare/s/77", AT_FDCWD</q>, "/q/remote/3/8") = 0
7 02:00:00.000010 openat(AT_FDCWD</q>, "/q/local/2/6", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0644) = 5</q/local/2/6>
7 02:00:00.000011 write(5</q/local/2/6>, "Te@f\0", 5) = 5
7 02:00:00.000012 write(6</q/remote/3/8>, "Tg@h\0", 5) = 5
7 02:00:00.000013 fsync(6</q/remote/3/8>) = 0
7 02:00:00.000014 unlinkat(AT_FDCWD</q>, "todo/8", 0) = 0
`
	ev, err := ParseTrace(strings.NewReader(tr))
	if err != nil {
		t.Fatal(err)
	}
	// remote/3/8 was local/2/6 until its stash; the later local/2/6 is another file.
	if seq, err := SyncedBefore(ev, "/q", "/q/remote/3/8", 13); err != nil || seq != 12 {
		t.Errorf("remote/3/8: sync #%d, %v", seq, err)
	}
	n := Names(ev, "/q", "/q/local/1/5", 7)
	if len(n) != 2 || n["/q/local/1/5"] != (Span{2, 8}) || n["/q/spare/s/77"] != (Span{0, 2}) {
		t.Errorf("names of local/1/5: %v", n)
	}
	if seq, err := SyncedBefore(ev, "/q", "/q/local/1/5", 7); err != nil || seq != 4 {
		t.Errorf("local/1/5: sync #%d, %v", seq, err)
	}
}

// A syncfs that was already running when the last write finished does not cover it,
// even though it finished after the write.
func TestSyncMustStartAfterWrite(t *testing.T) {
	const tr = `8 02:00:00.000001 syncfs(3</q> <unfinished ...>
7 02:00:00.000002 write(4</q/mess/3/42>, "x", 1) = 1
8 02:00:00.000003 <... syncfs resumed>) = 0
7 02:00:00.000004 linkat(AT_FDCWD</q>, "intd/42", AT_FDCWD</q>, "todo/42", 0) = 0
8 02:00:00.000005 syncfs(3</q>) = 0
7 02:00:00.000006 exit_group(0) = ?
`
	ev, err := ParseTrace(strings.NewReader(tr))
	if err != nil {
		t.Fatal(err)
	}
	if ev[1].Call != "syncfs" || ev[1].Start != 0 || ev[1].Seq != 1 {
		t.Fatalf("joined syncfs: %+v", ev[1])
	}
	if seq, err := SyncedBefore(ev, "/q", "/q/mess/3/42", 2); err == nil {
		t.Errorf("a syncfs begun before the write passed (#%d)", seq)
	}
	if seq, err := SyncedBefore(ev, "/q", "/q/mess/3/42", 4); err != nil || seq != 3 {
		t.Errorf("the later syncfs: #%d, %v", seq, err)
	}
	if _, err := DirSyncedBetween(ev, "/q/todo", 2, 4); err != nil {
		t.Errorf("todo/ sync after the link: %v", err)
	}
	if _, err := DirSyncedBetween(ev, "/q/todo", 0, 2); err == nil {
		t.Error("a syncfs begun at the lower bound passed")
	}
}

// An execve run by a thread other than the leader resumes under the leader's pid, as
// strace reports it ("superseded by execve"); a program that executes itself again
// (qmail-start setting its timer slack) does that.
func TestParseTraceExecveByThread(t *testing.T) {
	const tr = `200 02:00:00.000001 write(1<pipe:[1]>, "a", 1) = 1
203 02:00:00.000002 execve("/home/bin/qmail-start", ["/home/bin/qmail-start"], 0xc0 /* 3 vars */ <unfinished ...>
200 02:00:00.000003 +++ superseded by execve in pid 203 +++
200 02:00:00.000004 <... execve resumed>) = 0
200 02:00:00.000005 write(1<pipe:[1]>, "b", 1) = 1
`
	ev, err := ParseTrace(strings.NewReader(tr))
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 3 {
		t.Fatalf("%d events, want 3: %v", len(ev), ev)
	}
	if e := ev[1]; e.Call != "execve" || e.PID != 200 || e.Ret != "0" || !strings.Contains(e.Args, "qmail-start") {
		t.Errorf("execve: %+v", e)
	}
}
