package home

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDirDefault(t *testing.T) {
	t.Setenv("QMAILHOME", "")
	if got := Dir(); got != Default {
		t.Fatalf("Dir() = %q, want %q", got, Default)
	}
	if InSandbox() {
		t.Fatal("sandbox mode without QMAILHOME")
	}
}

func TestDirFromEnv(t *testing.T) {
	d := t.TempDir()
	t.Setenv("QMAILHOME", d)
	if got := Dir(); got != d {
		t.Fatalf("Dir() = %q, want %q", got, d)
	}
	if got, want := Path("control", "me"), filepath.Join(d, "control", "me"); got != want {
		t.Fatalf("Path = %q, want %q", got, want)
	}
}

func TestSandboxFollowsOwner(t *testing.T) {
	d := t.TempDir()
	t.Setenv("QMAILHOME", d)
	if os.Geteuid() != 0 {
		o, ok := Sandbox()
		if !ok || o.UID != os.Getuid() {
			t.Fatalf("Sandbox() = %v, %v; want owner %d", o, ok, os.Getuid())
		}
		return
	}
	// As root: a root-owned home is not a sandbox; one owned by another user is.
	if InSandbox() {
		t.Fatal("root-owned QMAILHOME treated as a sandbox")
	}
	if err := os.Chown(d, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	o, ok := Sandbox()
	if !ok || o.UID != 65534 || o.GID != 65534 {
		t.Fatalf("Sandbox() = %v, %v; want 65534:65534", o, ok)
	}
}

func TestDirRelativeMadeAbsolute(t *testing.T) {
	t.Setenv("QMAILHOME", "rel/home")
	if !filepath.IsAbs(Dir()) {
		t.Fatalf("Dir() = %q, want absolute", Dir())
	}
}
