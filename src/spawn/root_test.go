package spawn

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLocalDropsPrivileges runs as root only: qmail-getpw must run as qmailp:nofiles
// and qmail-local as the recipient's uid and gid with no supplementary groups.
func TestLocalDropsPrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	// A home every user can reach (t.TempDir is 0700).
	h, err := os.MkdirTemp("", "lspawn-root-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(h)
	os.Chmod(h, 0755)
	os.MkdirAll(filepath.Join(h, "bin"), 0755)
	getpw := "#!/bin/sh\nprintf 'nob\\000%s\\000%s\\000/nonexistent\\000\\000\\000' 65534 65533 \necho \"getpw-as $(id -u):$(id -g)\" >&2\n"
	local := "#!/bin/sh\necho \"local-as $(id -u):$(id -g) groups $(id -G)\"\n"
	os.WriteFile(filepath.Join(h, "bin", "qmail-getpw"), []byte(getpw), 0755)
	os.WriteFile(filepath.Join(h, "bin", "qmail-local"), []byte(local), 0755)
	l := &Local{Home: h, DefaultDelivery: "./Maildir/", GetpwUID: 65532, GetpwGID: 65531}
	got := deliverLocal(t, l, "a@b", "nob@here")
	if got != "Klocal-as 65534:65533 groups 65533\n" {
		t.Errorf("report %q", got)
	}
	// The account qmail-getpw reports must come from qmail-getpw running unprivileged:
	// check by making it refuse to run as root.
	os.WriteFile(filepath.Join(h, "bin", "qmail-getpw"), []byte("#!/bin/sh\n[ \"$(id -u):$(id -g)\" = 65532:65531 ] || exit 111\n"+strings.SplitN(getpw, "\n", 3)[1]+"\n"), 0755)
	if got := deliverLocal(t, l, "a@b", "nob@here"); !strings.HasPrefix(got, "K") {
		t.Errorf("qmail-getpw not run as qmailp:nofiles: %q", got)
	}
}
