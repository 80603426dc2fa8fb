package ids

import (
	"os"
	"testing"
)

func TestSandboxUsersAreOwner(t *testing.T) {
	d := t.TempDir()
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 65534, 65534
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("QMAILHOME", d)
	for _, n := range Users {
		a, err := User(n)
		if err != nil {
			t.Fatal(err)
		}
		if a.UID != uid || a.GID != gid {
			t.Errorf("%s = %d:%d, want the sandbox owner's %d:%d", n, a.UID, a.GID, uid, gid)
		}
	}
	if g, err := Group(GroupQmail); err != nil || g != gid {
		t.Errorf("Group(qmail) = %d, %v; want %d", g, err, gid)
	}
}

func TestMissingUserIsAnError(t *testing.T) {
	t.Setenv("QMAILHOME", "")
	if _, err := User("notqmail-no-such-user"); err == nil {
		t.Fatal("lookup of a missing user succeeded")
	}
}

func TestRootLookup(t *testing.T) {
	t.Setenv("QMAILHOME", "")
	a, err := User("root")
	if err != nil {
		t.Fatal(err)
	}
	if a.UID != 0 {
		t.Fatalf("root uid = %d", a.UID)
	}
}
