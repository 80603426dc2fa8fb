package qmtp

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/notqmail/notqmail/src/control"
)

func TestRoutes(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "qmtproutes"), []byte("hub.example:10.0.0.1\n.sub.example:[192.0.2.1]:2209\nmx.example:\n:fallback.example:20\nHub.Example:ignored\n"), 0644)
	rs, err := LoadRoutes(control.Open(dir))
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]Route{
		"hub.example":       {"hub.example", "10.0.0.1", 209},
		"HUB.example":       {"hub.example", "10.0.0.1", 209},
		"a.b.sub.example":   {".sub.example", "[192.0.2.1]", 2209},
		"mx.example":        {"mx.example", "", 209},
		"elsewhere.example": {"", "fallback.example", 20},
	} {
		if got, ok := rs.Lookup(host); !ok || got != want {
			t.Errorf("%s: %+v %v, want %+v", host, got, ok, want)
		}
	}
	for _, bad := range []string{"nocolon\n", "a.example:relay:0\n", "a.example:[1.2.3.4\n", "a.example:re lay\n", "a.example:r:99999\n"} {
		os.WriteFile(filepath.Join(dir, "qmtproutes"), []byte(bad), 0644)
		if _, err := LoadRoutes(control.Open(dir)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	os.Remove(filepath.Join(dir, "qmtproutes"))
	if rs, err := LoadRoutes(control.Open(dir)); err != nil || len(rs) != 0 {
		t.Errorf("missing file: %v %v", rs, err)
	}
}

func TestMXPS(t *testing.T) {
	for pref, want := range map[int]bool{12801: true, 12817: true, 13041: true, 12800: false, 12802: false, 10: false, 13057: false, 1: false} {
		if MXPS(pref) != want {
			t.Errorf("MXPS(%d) = %v", pref, !want)
		}
	}
}
