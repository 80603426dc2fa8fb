package control

import (
	"os"
	"strings"
	"testing"
)

// TestManPageListsEveryFile keeps qmail-control(5) in step with Files: every control
// file the project reads has an entry there, and the page lists no file nothing reads.
func TestManPageListsEveryFile(t *testing.T) {
	b, err := os.ReadFile("../man/qmail-control.5.md")
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	documented := map[string]bool{}
	for _, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, "**") {
			if name, _, ok := strings.Cut(l[2:], "**"); ok {
				documented[name] = true
			}
		}
	}
	for _, f := range Files {
		if !documented[f.Name] {
			t.Errorf("qmail-control(5) has no entry **%s** (%s)", f.Name, f.Meaning)
		}
	}
	for name := range documented {
		if !Known(name) && !strings.HasPrefix(name, "qmail-") {
			t.Errorf("qmail-control(5) documents %s, which no program reads", name)
		}
	}
}
