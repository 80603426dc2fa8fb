package matrix

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMergeAndMarkdown(t *testing.T) {
	rows := []Row{
		{Name: "d12", Distribution: "Debian", Release: "12", Arch: "amd64", Format: "deb", Here: &HereSpec{Suite: "bookworm"}},
		{Name: "d13", Distribution: "Debian", Release: "13", Arch: "amd64", Format: "deb", Here: &HereSpec{Suite: "trixie"}},
		{Name: "fed", Distribution: "Fedora", Release: "42", Arch: "amd64", Format: "rpm", NotHere: "no Fedora archive", Container: "fedora:42"},
	}
	old := Report{Rows: []Result{{Row: rows[1], Version: "0.9", Date: "2026-01-02T00:00:00Z", Cells: []Cell{{Step: "install", Status: Pass}}}}}
	cells := []Cell{{Step: "install", Status: Pass}, {Step: "users", Status: Fail, Reason: "queue/lock/trigger is not a FIFO"}}
	for _, s := range Steps[2:] {
		cells = append(cells, Cell{Step: s, Status: NotRun, Reason: "install failed"})
	}
	fresh := []Result{{Row: rows[0], Version: "1.0", Date: "2026-11-22T00:00:00Z", Seconds: 42, RootCached: true, Cells: cells}}
	rep := Merge(old, rows, fresh, "2026-11-22T00:01:00Z")
	if len(rep.Rows) != 3 || rep.Rows[1].Version != "0.9" {
		t.Fatalf("merge kept the wrong rows: %+v", rep.Rows)
	}
	for _, c := range rep.Rows[2].Cells {
		if c.Status != NotRun || !strings.Contains(c.Reason, "fedora:42") || !strings.Contains(c.Reason, "no Fedora archive") {
			t.Fatalf("CI-only cell %+v", c)
		}
	}
	rep.Warm = &WarmRun{Date: "2026-11-22T00:01:00Z", Seconds: 95, Rows: []string{"d12", "d13"}, Cores: 2}
	md := Markdown(rep)
	for _, want := range []string{
		"| Debian 12 | amd64 | deb | ✅ pass | ❌ **fail** [1] | not run [2] |",
		"1. d12 users: queue/lock/trigger is not a FIFO",
		"2. install failed",
		"`1.0` | 2026-11-22 | 42 s (cached root) |",
		"| Debian 13 | amd64 | deb | ✅ pass | – |",
		"took 95 s on 2 cores",
		"Rows run only by CI, in official containers: fed.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("MATRIX.md lacks %q:\n%s", want, md)
		}
	}
	dir := t.TempDir()
	if err := WriteReport(dir, rep); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(filepath.Join(dir, "matrix.json"))
	if err != nil || len(back.Rows) != 3 || back.Rows[0].Cells[1].Reason != "queue/lock/trigger is not a FIFO" {
		t.Fatalf("matrix.json round trip: %v %+v", err, back)
	}
	os.WriteFile(filepath.Join(dir, "matrix.json"), []byte("{"), 0o644)
	if _, err := ReadReport(filepath.Join(dir, "matrix.json")); err == nil {
		t.Fatal("a broken matrix.json read without error")
	}
}

// The committed MATRIX.md is what matrix.json renders to: nobody edited it by hand.
func TestCommittedMatrixMatchesJSON(t *testing.T) {
	rep, err := ReadReport(filepath.Join(tree, "distros", "matrix.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) == 0 {
		t.Skip("no matrix.json committed yet")
	}
	md, err := os.ReadFile(filepath.Join(tree, "distros", "MATRIX.md"))
	if err != nil {
		t.Fatal(err)
	}
	if string(md) != Markdown(rep) {
		t.Fatal("distros/MATRIX.md differs from what distros/matrix.json renders to: run go run mage.go matrix all")
	}
}

func TestWarmDebian(t *testing.T) {
	deb := func(name string, cached bool, secs float64, date string) Result {
		return Result{Row: Row{Name: name, Distribution: "Debian", Here: &HereSpec{}}, RootCached: cached, Seconds: secs, Date: date}
	}
	rep := Report{Rows: []Result{deb("a", true, 10, "2026-11-22T01:00:00Z"), deb("b", true, 20.5, "2026-11-22T02:00:00Z"),
		{Row: Row{Name: "f", Distribution: "Fedora", NotHere: "x"}}}}
	w := warmDebian(rep)
	if w == nil || w.Seconds != 30.5 || len(w.Rows) != 2 || w.Date != "2026-11-22T02:00:00Z" {
		t.Fatalf("warm = %+v", w)
	}
	rep.Rows[0].RootCached = false
	if warmDebian(rep) != nil {
		t.Fatal("a row that built its root counted as warm")
	}
}
