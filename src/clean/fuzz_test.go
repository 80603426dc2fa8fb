package clean

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/notqmail/notqmail/src/queue"
)

// FuzzHandle: any request gets one of qmail-clean's three answers, and nothing outside
// intd/, todo/ and mess/ is ever touched.
func FuzzHandle(f *testing.F) {
	for _, s := range []string{"foop/1", "todo/23", "foop/../../x", "todo/", "foop/1/2", "x", "todo/99999999999999999999999"} {
		f.Add(s)
	}
	dir := f.TempDir()
	for _, d := range []string{"intd", "todo"} {
		os.MkdirAll(filepath.Join(dir, d), 0700)
	}
	for i := 0; i < queue.DefaultSplit; i++ {
		os.MkdirAll(filepath.Join(dir, "mess", strconv.Itoa(i)), 0700)
	}
	canary := filepath.Join(dir, "canary")
	os.WriteFile(canary, nil, 0600)
	q := queue.Open(dir)
	f.Fuzz(func(t *testing.T, req string) {
		switch a := Handle(q, req); a {
		case '+', '!', 'x':
		default:
			t.Fatalf("answer %q", a)
		}
		if _, err := os.Stat(canary); err != nil {
			t.Fatalf("request %q removed a file outside the queue", req)
		}
	})
}
