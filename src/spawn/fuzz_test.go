package spawn

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRemoteReport: whatever qmail-remote writes, the report is one of K, Z, D with no
// NUL in it.
func FuzzRemoteReport(f *testing.F) {
	f.Add(0, []byte("r\x00Kok\x00"))
	f.Add(0, []byte("hno\x00Dno\x00"))
	f.Add(0, []byte("\x00\x00\x00"))
	f.Add(0, []byte("s"))
	f.Add(111, []byte(""))
	f.Fuzz(func(t *testing.T, code int, out []byte) {
		r := RemoteReport(code, false, out)
		if len(r) == 0 || (r[0] != 'K' && r[0] != 'Z' && r[0] != 'D') || bytes.IndexByte(r, 0) >= 0 {
			t.Fatalf("report %q", r)
		}
	})
}

// FuzzServe feeds arbitrary command streams to the spawner: it must answer every
// complete command exactly once, never panic, and finish.
func FuzzServe(f *testing.F) {
	f.Add([]byte(cmd(0, "1/24", "a@b", "c@d")))
	f.Add([]byte(cmd(0, "1/24", "a@b", "c@d") + cmd(0, "1/24", "a@b", "c@d")))
	f.Add([]byte("\x05\x00\x00\x00"))
	f.Add([]byte("\xff1/24\x00x\x00y@z"))
	dir := f.TempDir()
	os.MkdirAll(filepath.Join(dir, "1"), 0700)
	os.WriteFile(filepath.Join(dir, "1", "24"), []byte("M"), 0600)
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &Server{MessDir: dir, OwnerUID: -1, Runner: &echoRunner{}}
		var out bytes.Buffer
		s.Serve(bytes.NewReader(in), &out)
		if out.Len() < 1 || out.Bytes()[0] != Limit {
			t.Fatalf("no announcement: %q", out.Bytes())
		}
		// Count complete commands: four fields, the last three NUL-terminated.
		n, nul := 0, 0
		for i := 0; i < len(in); i++ {
			if nul == 0 {
				nul = 1 // the slot byte
				continue
			}
			if in[i] == 0 {
				nul++
				if nul == 4 {
					n++
					nul = 0
				}
			}
		}
		if got := bytes.Count(out.Bytes()[1:], []byte{0}); got < n {
			t.Fatalf("%d commands, %d reports", n, got)
		}
	})
}
