package chroot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// What the kernel shows for Debian 12's qemu-user-static aarch64 handler.
const qemuAarch64Entry = `enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: PF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
`

func TestRegistration(t *testing.T) {
	got, err := registration("qemu-aarch64", qemuAarch64Entry, "OC")
	if err != nil {
		t.Fatal(err)
	}
	want := `:qemu-aarch64:M:0:\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:` +
		`\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:` +
		`/usr/libexec/qemu-binfmt/aarch64-binfmt-P:PFOC`
	if got != want {
		t.Errorf("registration\n got %s\nwant %s", got, want)
	}
	if got, _ := registration("qemu-aarch64", qemuAarch64Entry, "F"); !strings.HasSuffix(got, ":PF") {
		t.Errorf("a flag already there was added again: %s", got)
	}
	for _, bad := range []string{"enabled\n", "interpreter /x\nflags: F\nextension .exe\n", "interpreter /x\nmagic 7g\nmask ff\n"} {
		if r, err := registration("h", bad, ""); err == nil {
			t.Errorf("registration of %q = %q, want an error", bad, r)
		}
	}
}

// EmulateSetuid replaces the handler with one that has the credentials flag, and
// its restore puts the original back; a handler with the flag is left alone.
func TestEmulateSetuid(t *testing.T) {
	dir := t.TempDir()
	old := binfmtDir
	binfmtDir = dir
	t.Cleanup(func() { binfmtDir = old })
	entry, register := filepath.Join(dir, "qemu-aarch64"), filepath.Join(dir, "register")
	os.WriteFile(entry, []byte(qemuAarch64Entry), 0o644)
	os.WriteFile(register, nil, 0o644)

	restore, err := EmulateSetuid("arm64")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(entry); string(b) != "-1" {
		t.Errorf("the old handler was not removed: %q", b)
	}
	if b, _ := os.ReadFile(register); !strings.HasSuffix(string(b), ":PFOC") {
		t.Errorf("registered %q, want the credentials flag", b)
	}
	withC := strings.Replace(qemuAarch64Entry, "flags: PF", "flags: POCF", 1)
	os.WriteFile(entry, []byte(withC), 0o644)
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(register); !strings.HasSuffix(string(b), ":PF") {
		t.Errorf("restore registered %q, want the original flags", b)
	}

	// Flag already there: nothing is written.
	os.WriteFile(entry, []byte(withC), 0o644)
	os.WriteFile(register, nil, 0o644)
	if _, err := EmulateSetuid("arm64"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(register); len(b) != 0 {
		t.Errorf("a handler with the flag was registered again: %q", b)
	}
	if _, err := EmulateSetuid("vax"); err == nil {
		t.Error("an unknown arch got no error")
	}
}
