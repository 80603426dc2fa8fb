package tcpto_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/sandbox"
	"github.com/notqmail/notqmail/src/tcpto"
)

// TestPrograms runs the built qmail-tcpto and qmail-tcpok in a sandbox home.
func TestPrograms(t *testing.T) {
	h := sandbox.New(t, sandbox.Options{})
	for _, p := range []string{"qmail-tcpto", "qmail-tcpok"} {
		if _, err := os.Lstat(filepath.Join(h.Bin, p)); err != nil {
			t.Skipf("the sandbox's notqmail does not serve %s", p)
		}
	}
	path := filepath.Join(h.Queue().LockDir(), "tcpto")
	rec := make([]byte, tcpto.Size)
	copy(rec[16:], []byte{192, 0, 2, 7, 3})
	binary.LittleEndian.PutUint32(rec[16+8:], uint32(time.Now().Add(-100*time.Second).Unix()))
	if err := os.WriteFile(path, rec, 0644); err != nil {
		t.Fatal(err)
	}

	out, err := h.Command("qmail-tcpto").CombinedOutput()
	if err != nil {
		t.Fatalf("qmail-tcpto: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`^192\.0\.2\.7 timed out (\d+) seconds ago; # recent timeouts: 3\n$`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("qmail-tcpto printed %q", out)
	}
	if n, _ := strconv.Atoi(string(m[1])); n < 100 {
		t.Errorf("qmail-tcpto says %d seconds ago, the record is 100 seconds old", n)
	}

	if out, err := h.Command("qmail-tcpok").CombinedOutput(); err != nil {
		t.Fatalf("qmail-tcpok: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(path)
	if len(b) != tcpto.Size || string(b) != string(make([]byte, tcpto.Size)) {
		t.Errorf("qmail-tcpok left %d bytes, not all zero", len(b))
	}
	if out, _ := h.Command("qmail-tcpto").CombinedOutput(); len(out) != 0 {
		t.Errorf("after qmail-tcpok: %q", out)
	}
}
