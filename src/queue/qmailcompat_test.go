package queue

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// buildQmailQueue lays down a queue by hand, the way qmail's install and qmail-queue
// leave one (qmail-interfaces §2.1, §2.2): its directories and modes, one freshly
// queued message (mess + intd + todo, intd and todo one inode) and one message that
// qmail-send already preprocessed (mess + info + local + remote, a recipient marked
// done with D). It returns the two ids.
func buildQmailQueue(t *testing.T, dir string, split int) (queued, preprocessed uint64) {
	t.Helper()
	mk := func(rel string, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	mk("", 0750)
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{"pid", 0700}, {"intd", 0700}, {"todo", 0750}, {"mess", 0750}, {"info", 0700}, {"local", 0700}, {"remote", 0700}, {"bounce", 0700}, {"lock", 0750}} {
		mk(d.name, d.mode)
	}
	for i := 0; i < split; i++ {
		mk("mess/"+strconv.Itoa(i), 0750)
		mk("info/"+strconv.Itoa(i), 0700)
		mk("local/"+strconv.Itoa(i), 0700)
		mk("remote/"+strconv.Itoa(i), 0700)
	}
	os.WriteFile(filepath.Join(dir, "lock/tcpto"), make([]byte, 1024), 0644)
	os.WriteFile(filepath.Join(dir, "lock/sendmutex"), nil, 0600)
	if err := syscall.Mkfifo(filepath.Join(dir, "lock/trigger"), 0622); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, "lock/trigger"), 0622) // past the umask, as qmail's install does

	// A queued message: written as a pid file whose inode names it.
	write := func(body string) uint64 {
		tmp := filepath.Join(dir, "pid", "999.1700000000.1")
		if err := os.WriteFile(tmp, []byte(body), 0644); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(tmp)
		id := fi.Sys().(*syscall.Stat_t).Ino
		if err := os.Link(tmp, filepath.Join(dir, "mess", strconv.FormatUint(id%uint64(split), 10), strconv.FormatUint(id, 10))); err != nil {
			t.Fatal(err)
		}
		os.Remove(tmp)
		return id
	}
	queued = write("Received: (qmail 999 invoked by uid 1000); 14 Nov 2023 22:13:20 -0000\nSubject: old\n\nfrom qmail\n")
	intd := filepath.Join(dir, "intd", strconv.FormatUint(queued, 10))
	os.WriteFile(intd, []byte("u1000\x00p999\x00Fjoe@example.org\x00Tpostmaster@example.org\x00Tfriend@example.net\x00"), 0644)
	if err := os.Link(intd, filepath.Join(dir, "todo", strconv.FormatUint(queued, 10))); err != nil {
		t.Fatal(err)
	}

	preprocessed = write("Received: (qmail 998 invoked from network); 14 Nov 2023 22:13:00 -0000\nSubject: older\n\n")
	sub := strconv.FormatUint(preprocessed%uint64(split), 10) + "/" + strconv.FormatUint(preprocessed, 10)
	os.WriteFile(filepath.Join(dir, "info", sub), []byte("Fjoe@example.org\x00"), 0600)
	os.WriteFile(filepath.Join(dir, "local", sub), []byte("Dpostmaster@example.org\x00Tjoe@example.org\x00"), 0600)
	os.WriteFile(filepath.Join(dir, "remote", sub), []byte("Tfriend@example.net\x00"), 0600)
	return queued, preprocessed
}

func TestReadsAQueueWrittenByQmail(t *testing.T) {
	for _, split := range []int{23, 101} {
		t.Run("split"+strconv.Itoa(split), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "queue")
			queued, pre := buildQmailQueue(t, dir, split)
			q := Open(dir)
			if q.Split != split {
				t.Fatalf("detected split %d, want %d", q.Split, split)
			}
			ids, err := q.Todo()
			if err != nil || len(ids) != 1 || ids[0] != queued {
				t.Fatalf("Todo = %v, %v; want [%d]", ids, err, queued)
			}
			env, err := q.ReadEnvelope(queued)
			if err != nil || env.UID != 1000 || env.PID != 999 || env.Sender != "joe@example.org" ||
				strings.Join(env.Recipients, " ") != "postmaster@example.org friend@example.net" {
				t.Fatalf("ReadEnvelope = %+v, %v", env, err)
			}
			if b, err := os.ReadFile(q.Path("mess", queued)); err != nil || !strings.HasSuffix(string(b), "from qmail\n") {
				t.Errorf("mess: %q %v", b, err)
			}
			for _, sub := range []string{"mess", "info", "local", "remote"} {
				if _, err := os.Stat(q.Path(sub, pre)); err != nil {
					t.Errorf("%s of preprocessed message: %v", sub, err)
				}
			}

			// Installing over it (Create) keeps everything and changes nothing but
			// adding the spare directories qmail does not have.
			before := snapshot(t, dir)
			if err := Create(dir, split, Owners{Qmailq: os.Geteuid(), Qmails: os.Geteuid(), Qmailr: os.Geteuid(), Qmail: os.Getegid()}); err != nil {
				t.Fatal(err)
			}
			var after []string
			for _, e := range snapshot(t, dir) {
				if !strings.HasPrefix(e, "spare") {
					after = append(after, e)
				}
			}
			for i := range max(len(before), len(after)) {
				if i >= len(before) || i >= len(after) || before[i] != after[i] {
					t.Fatalf("Create changed the queue: first difference at entry %d:\nbefore %q\nafter  %q",
						i, before[min(i, len(before)-1)], after[min(i, len(after)-1)])
				}
			}

			// And our qmail-queue adds to it alongside qmail's messages.
			err = Enqueue(q, strings.NewReader("new\n"), strings.NewReader("Fa@b\x00Tc@d\x00\x00"), testCaller)
			if err != nil {
				t.Fatal(err)
			}
			ids, _ = q.Todo()
			if len(ids) != 2 {
				t.Errorf("Todo after Enqueue: %v", ids)
			}
			if env2, err := q.ReadEnvelope(queued); err != nil || env2.Sender != env.Sender {
				t.Errorf("qmail's message changed: %+v %v", env2, err)
			}
		})
	}
}

// snapshot describes every node under dir, one entry each: path, mode and contents.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		e := rel + " " + fi.Mode().String()
		if fi.Mode().IsRegular() {
			c, _ := os.ReadFile(p)
			e += " " + strconv.Quote(string(c))
		}
		out = append(out, e)
		return nil
	})
	return out
}
