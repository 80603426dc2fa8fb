package testrun

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFuzzTargetsFindsFunctions(t *testing.T) {
	root := t.TempDir()
	write := func(rel, body string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("src/b/b_test.go", "package b\n\nfunc FuzzZ(f *testing.F) {}\nfunc FuzzA(f *testing.F) {}\nfunc TestX(t *testing.T) {}\n")
	write("src/a/a_test.go", "package a\n\nfunc FuzzParse(f *testing.F) {\n}\n")
	write("src/a/a.go", "package a\n\nfunc FuzzNotATest(f *testing.F) {}\n")
	write("src/a/testdata/fuzz/x_test.go", "func FuzzCorpus(f *testing.F) {}\n")
	write("packaging/p/p_test.go", "package p\n\n// func FuzzCommented(f *testing.F) {}\nfunc FuzzP(ff *testing.F) {}\n")
	got, err := FuzzTargets(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []FuzzTarget{{"packaging/p", "FuzzP"}, {"src/a", "FuzzParse"}, {"src/b", "FuzzA"}, {"src/b", "FuzzZ"}}
	if len(got) != len(want) {
		t.Fatalf("FuzzTargets = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("target %d = %v, want %v", i, got[i], want[i])
		}
	}
	if a := fuzzArgs(want[1], "3s"); a[len(a)-1] != "./src/a" || a[4] != "^FuzzParse$" {
		t.Errorf("fuzzArgs = %v", a)
	}
}

func TestFuzzTargetsOfThisTree(t *testing.T) {
	got, err := FuzzTargets(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[FuzzTarget]bool{}
	for _, f := range got {
		seen[f] = true
	}
	// The fuzz targets issue 4 names must run in CI.
	for _, f := range []FuzzTarget{{"src/smtpd", "FuzzSession"}, {"src/smtpd", "FuzzReadData"}} {
		if !seen[f] {
			t.Errorf("%v not found among %v", f, got)
		}
	}
}

func TestFuzzTime(t *testing.T) {
	t.Setenv(FuzzTimeEnv, "")
	if fuzzTime() != defaultFuzzTime {
		t.Errorf("default fuzz time %q", fuzzTime())
	}
	t.Setenv(FuzzTimeEnv, "0")
	if fuzzTime() != "" {
		t.Error("0 does not switch fuzzing off")
	}
	t.Setenv(FuzzTimeEnv, "20s")
	if fuzzTime() != "20s" {
		t.Errorf("fuzz time %q", fuzzTime())
	}
}
