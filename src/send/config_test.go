package send

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/control"
)

func controlDir(t *testing.T, files map[string]string) control.Dir {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0644); err != nil {
			t.Fatal(err)
		}
	}
	return control.Open(dir)
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig(controlDir(t, map[string]string{"me": "mx.example.org\n"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Lifetime != 604800 || c.Concurrency != [nchan]int{10, 20} || c.BounceFrom != "MAILER-DAEMON" ||
		c.BounceHost != "mx.example.org" || c.DoubleBounceTo != "postmaster@mx.example.org" ||
		c.Rewriter.EnvNoAtHost != "mx.example.org" || !c.Rewriter.Locals["mx.example.org"] {
		t.Errorf("defaults: %+v %+v", c, c.Rewriter)
	}
	// Without me, qmail's literal fallbacks.
	c, err = LoadConfig(controlDir(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.BounceHost != "bouncehost" || c.DoubleBounceTo != "postmaster@doublebouncehost" || c.Rewriter.EnvNoAtHost != "envnoathost" {
		t.Errorf("no me: %+v", c)
	}
}

func TestEmptyControlFilesCount(t *testing.T) {
	c, err := LoadConfig(controlDir(t, map[string]string{"me": "mx.example.org\n", "doublebounceto": "\n", "bouncefrom": ""}))
	if err != nil {
		t.Fatal(err)
	}
	if c.DoubleBounceTo != "@mx.example.org" || c.BounceFrom != "" {
		t.Errorf("empty files: doublebounceto %q bouncefrom %q", c.DoubleBounceTo, c.BounceFrom)
	}
}

func TestLoadConfigFiles(t *testing.T) {
	c, err := LoadConfig(controlDir(t, map[string]string{
		"me":                "mx.example.org\n",
		"queuelifetime":     "3600\n",
		"concurrencylocal":  "3 \n",
		"concurrencyremote": "0\n",
		"bouncefrom":        "bounces\n",
		"bouncehost":        "b.example.org\n",
		"doublebounceto":    "hostmaster\n",
		"doublebouncehost":  "d.example.org\n",
		"envnoathost":       "e.example.org\n",
		"locals":            "# comment\nexample.org\nLocalHost\n\n",
		"percenthack":       "gw.example.org\n",
		"virtualdomains":    "v.example:vu\nnocolon\nv.example:later\n",
	}))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Rewriter
	if c.Lifetime != 3600 || c.Concurrency != [nchan]int{3, 0} || c.BounceFrom != "bounces" ||
		c.BounceHost != "b.example.org" || c.DoubleBounceTo != "hostmaster@d.example.org" ||
		r.EnvNoAtHost != "e.example.org" || len(r.Locals) != 2 || !r.Locals["localhost"] ||
		!r.PercentHack["gw.example.org"] || r.VirtualDoms["v.example"] != "later" || len(r.VirtualDoms) != 1 {
		t.Errorf("%+v %+v", c, r)
	}
	if _, err := LoadConfig(controlDir(t, map[string]string{"concurrencylocal": "ten\n"})); err == nil ||
		!strings.Contains(err.Error(), "concurrencylocal") {
		t.Errorf("bad number: %v", err)
	}
}

func TestSIGHUPRereadsLocals(t *testing.T) {
	q := makeQueue(t)
	ctl := controlDir(t, map[string]string{"me": "here.example\n", "locals": "here.example\n"})
	h := startDaemon(t, q, 604800)
	h.d.Config.Control = ctl
	id := enqueue(t, q, "joe@x", "ok@new.example")
	h.pull()
	waitFor(t, h, "remote delivery", func() bool { return gone(q, id) })
	if h.spawn[Remote].count("ok@new.example") != 1 {
		t.Fatal("not delivered remotely before the change")
	}
	os.WriteFile(ctl.File("locals"), []byte("here.example\nnew.example\n"), 0644)
	h.sigs <- syscall.SIGHUP
	// The reread happens at the top of the next loop; a trigger makes sure there is one.
	time.Sleep(100 * time.Millisecond)
	id = enqueue(t, q, "joe@x", "ok@new.example")
	h.pull()
	waitFor(t, h, "local delivery", func() bool { return gone(q, id) })
	if h.spawn[Local].count("ok@new.example") != 1 {
		t.Errorf("not delivered locally after SIGHUP; log:\n%s", h.log.String())
	}
}

func TestStaleMessCleanup(t *testing.T) {
	q := makeQueue(t)
	old := time.Now().Add(-37 * time.Hour)
	// 500: a crash left only mess and intd: removed.
	os.WriteFile(q.Path("mess", 500), []byte("x"), 0644)
	os.WriteFile(q.Path("intd", 500), []byte("x"), 0644)
	os.Chtimes(q.Path("mess", 500), old, old)
	// 501: old but still queued (todo): kept. Its todo is unreadable as a message so the
	// daemon does not deliver it meanwhile.
	os.WriteFile(q.Path("mess", 501), []byte("x"), 0644)
	os.Chtimes(q.Path("mess", 501), old, old)
	os.Mkdir(q.Path("todo", 501), 0700)
	// 502: fresh, without info or todo (qmail-queue at work): kept.
	os.WriteFile(q.Path("mess", 502), []byte("x"), 0644)
	h := startDaemon(t, q, 604800)
	waitFor(t, h, "stale message removal", func() bool {
		_, e1 := os.Stat(q.Path("mess", 500))
		_, e2 := os.Stat(q.Path("intd", 500))
		return os.IsNotExist(e1) && os.IsNotExist(e2)
	})
	h.stop(t)
	h.done <- nil
	for _, id := range []uint64{501, 502} {
		if _, err := os.Stat(q.Path("mess", id)); err != nil {
			t.Errorf("mess/%d removed: %v", id, err)
		}
	}
}

func TestPreprocessRedoneAfterCrash(t *testing.T) {
	q := makeQueue(t)
	id := enqueue(t, q, "joe@x", "ok@here.example", "ok2@far.example")
	// A crash in the middle of preprocessing left a partial info and local file.
	os.WriteFile(q.Path("info", id), []byte("Fjo"), 0600)
	os.WriteFile(q.Path("local", id), []byte("Tgarbage@here.example\x00"), 0600)
	h := startDaemon(t, q, 604800)
	waitFor(t, h, "delivery", func() bool { return gone(q, id) })
	if h.spawn[Local].count("garbage@here.example") != 0 {
		t.Error("the stale local file was delivered")
	}
	if h.spawn[Local].count("ok@here.example") != 1 || h.spawn[Remote].count("ok2@far.example") != 1 {
		t.Errorf("log:\n%s", h.log.String())
	}
}

func TestBadTodoStays(t *testing.T) {
	q := makeQueue(t)
	id := enqueue(t, q, "joe@x", "ok@here.example")
	os.Remove(q.Path("todo", id))
	os.WriteFile(q.Path("todo", id), []byte("u1\x00Fjoe@x\x00Xbogus\x00"), 0644)
	h := startDaemon(t, q, 604800)
	waitFor(t, h, "warning", func() bool {
		return strings.Contains(h.log.String(), "warning: unknown record type in todo/"+num(id)+"\n")
	})
	if _, err := os.Stat(q.Path("todo", id)); err != nil {
		t.Error("a message with a bad envelope left todo/")
	}
	if h.spawn[Local].count("ok@here.example") != 0 {
		t.Error("delivered from a bad envelope")
	}
}

// An empty record (a stray NUL, as a hand-edited or truncated todo file may hold) is an
// unknown record type: a warning, and the message stays; qmail-send must not crash.
func TestEmptyTodoRecordStays(t *testing.T) {
	q := makeQueue(t)
	id := enqueue(t, q, "joe@x", "ok@here.example")
	os.Remove(q.Path("todo", id))
	os.WriteFile(q.Path("todo", id), []byte("u1\x00Fjoe@x\x00\x00Tok@here.example\x00"), 0644)
	h := startDaemon(t, q, 604800)
	waitFor(t, h, "warning", func() bool {
		return strings.Contains(h.log.String(), "warning: unknown record type in todo/"+num(id)+"\n")
	})
	if _, err := os.Stat(q.Path("todo", id)); err != nil {
		t.Error("a message with an empty envelope record left todo/")
	}
}

func TestConcurrencyZeroHolds(t *testing.T) {
	q := makeQueue(t)
	h := startDaemonWith(t, q, 604800, [nchan]int{0, 1})
	held := enqueue(t, q, "joe@x", "ok@here.example")
	sent := enqueue(t, q, "joe@x", "ok@far.example")
	h.pull()
	waitFor(t, h, "remote delivery", func() bool { return gone(q, sent) })
	if gone(q, held) || h.spawn[Local].count("ok@here.example") != 0 {
		t.Error("local delivery made with concurrencylocal 0")
	}
	if !strings.Contains(h.log.String(), "status: local 0/0 remote 0/1\n") {
		t.Errorf("log:\n%s", h.log.String())
	}
}
