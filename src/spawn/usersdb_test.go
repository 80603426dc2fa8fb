package spawn

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/users"
)

func newU(t *testing.T, h, assign string) {
	t.Helper()
	os.WriteFile(filepath.Join(h, "users", "assign"), []byte(assign), 0644)
	if err := users.NewU(filepath.Join(h, "users", "assign"), filepath.Join(h, "users", "cdb")); err != nil {
		t.Fatal(err)
	}
}

// users/cdb is held between deliveries, but every change to it is seen at the next
// delivery, as when qmail-lspawn opened it each time.
func TestLocalUsersCDBFollowsChanges(t *testing.T) {
	h := fakeHome(t)
	newU(t, h, "=bob:alice:1001:1002:/home/alice:-:box:\n.\n")
	l := &Local{Home: h, DefaultDelivery: "./Mailbox", Sandbox: true}
	if got, want := deliverLocal(t, l, "s@x", "bob@here"), "Kargs: -- alice /home/alice bob - box here s@x ./Mailbox\n"; got != want {
		t.Fatalf("first: got %q want %q", got, want)
	}
	held := l.users.r
	if held == nil {
		t.Fatal("users/cdb not held after a lookup")
	}
	if got := deliverLocal(t, l, "s@x", "bob@here"); !strings.HasPrefix(got, "Kargs: -- alice ") {
		t.Errorf("second: %q", got)
	}
	if l.users.r != held {
		t.Error("an unchanged users/cdb was read again")
	}

	// qmail-newu renames a new users/cdb into place.
	newU(t, h, "=bob:carol:1005:1006:/home/carol:-:box:\n.\n")
	if got, want := deliverLocal(t, l, "s@x", "bob@here"), "Kargs: -- carol /home/carol bob - box here s@x ./Mailbox\n"; got != want {
		t.Errorf("after qmail-newu: got %q want %q", got, want)
	}

	// Rewritten in place with the same size: its modification time differs (set
	// here, since two writes within one tick of the file system's clock share it).
	cdbPath := filepath.Join(h, "users", "cdb")
	newU(t, h, "=bob:darla:1005:1006:/home/darla:-:box:\n.\n")
	b, _ := os.ReadFile(cdbPath)
	newU(t, h, "=bob:carol:1005:1006:/home/carol:-:box:\n.\n")
	deliverLocal(t, l, "s@x", "bob@here")
	f, err := os.OpenFile(cdbPath, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(b, 0)
	f.Close()
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	os.Chtimes(cdbPath, old, old)
	if got := deliverLocal(t, l, "s@x", "bob@here"); !strings.HasPrefix(got, "Kargs: -- darla ") {
		t.Errorf("after an in-place rewrite: %q", got)
	}

	// Removed: qmail-getpw answers; back again: it is used.
	os.Remove(cdbPath)
	if got := deliverLocal(t, l, "s@x", "bob@here"); !strings.HasPrefix(got, "Kargs: -- ubob ") {
		t.Errorf("without users/cdb: %q", got)
	}
	newU(t, h, "=bob:alice:1001:1002:/home/alice:-:box:\n.\n")
	if got := deliverLocal(t, l, "s@x", "bob@here"); !strings.HasPrefix(got, "Kargs: -- alice ") {
		t.Errorf("users/cdb back: %q", got)
	}

	// Unreadable as a cdb: a temporary failure, not qmail-getpw's answer.
	os.WriteFile(cdbPath, []byte("garbage"), 0644)
	if got := deliverLocal(t, l, "s@x", "bob@here"); got != "ZTrouble reading users/cdb in qmail-lspawn.\n" {
		t.Errorf("damaged: %q", got)
	}
	if err := os.Mkdir(cdbPath+".d", 0755); err != nil {
		t.Fatal(err)
	}
	os.Remove(cdbPath)
	os.Symlink(cdbPath+".d", cdbPath)
	if got := deliverLocal(t, l, "s@x", "bob@here"); got != "ZTrouble reading users/cdb in qmail-lspawn.\n" {
		t.Errorf("a directory: %q", got)
	}
}

// A users/cdb too big to hold is opened for each lookup instead.
func TestUsersCDBTooBigToHold(t *testing.T) {
	h := t.TempDir()
	os.MkdirAll(filepath.Join(h, "users"), 0755)
	var b strings.Builder
	for i := 0; b.Len() < maxHeldCDB; i++ {
		b.WriteString("=user" + strings.Repeat("x", 200) + itoa(i) + ":alice:1001:1002:/home/alice:-::\n")
	}
	b.WriteString("=bob:alice:1001:1002:/home/alice:-:box:\n.\n")
	newU(t, h, b.String())
	var u usersCDB
	a, ok, err := u.lookup(filepath.Join(h, "users", "cdb"), "bob")
	if err != nil || !ok || a.User != "alice" || a.Ext != "box" {
		t.Fatalf("lookup: %+v %v %v", a, ok, err)
	}
	if u.r != nil {
		t.Error("a users/cdb over the limit is held")
	}
}

func itoa(i int) string {
	return string([]byte{byte('a' + i%26), byte('a' + i/26%26), byte('a' + i/676%26), byte('a' + i/17576%26)})
}
