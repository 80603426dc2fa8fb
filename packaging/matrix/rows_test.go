package matrix

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const tree = "../.."

func TestDistrosRows(t *testing.T) {
	rows, err := LoadRows(filepath.Join(tree, "distros"))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Row{}
	for _, r := range rows {
		byName[r.Name] = r
	}
	for _, want := range []string{"debian-11-amd64", "debian-12-amd64", "debian-13-amd64", "debian-unstable-amd64", "debian-12-arm64"} {
		r, ok := byName[want]
		if !ok || !r.Runnable() || r.Here.Builder != "mmdebstrap" || r.Format != "deb" {
			t.Errorf("row %s: want a runnable mmdebstrap deb row, got %+v", want, r)
		}
	}
	formats := map[string]bool{}
	ciOnly := map[string]bool{}
	for _, r := range rows {
		if r.Runnable() {
			formats[r.Format] = true
		} else {
			ciOnly[r.Distribution] = true
		}
	}
	if !formats["rpm"] {
		t.Error("no runnable rpm row")
	}
	for _, d := range []string{"Fedora", "Rocky Linux", "AlmaLinux", "Ubuntu", "Alpine"} {
		if !ciOnly[d] {
			t.Errorf("no CI-only row for %s", d)
		}
	}
	if r, ok := EveryChangeRow(rows); !ok || r.Name != "debian-12-amd64" {
		t.Errorf("every-change row = %v %v, want debian-12-amd64", r.Name, ok)
	}
}

func writeRow(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodRow = `name: x-1-amd64
distribution: X
release: "1"
arch: amd64
format: deb
init: none
here:
  builder: mmdebstrap
  suite: bookworm
`

func TestRowValidation(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadRow(writeRow(t, dir, "x-1-amd64", goodRow)); err != nil {
		t.Fatalf("good row: %v", err)
	}
	for name, c := range map[string]struct{ file, body, want string }{
		"unknown field":   {"x-1-amd64", goodRow + "colour: red\n", "colour"},
		"file name":       {"y-1-amd64", goodRow, "does not match the file name"},
		"format":          {"x-1-amd64", strings.Replace(goodRow, "format: deb", "format: snap", 1), "format"},
		"arch":            {"x-1-amd64", strings.Replace(goodRow, "arch: amd64", "arch: mips", 1), "arch"},
		"neither":         {"x-1-amd64", strings.SplitN(goodRow, "here:", 2)[0], "either here"},
		"skip step":       {"x-1-amd64", goodRow + "  skip:\n    fly: because\n", "unknown step"},
		"skip why":        {"x-1-amd64", goodRow + "  skip:\n    purge: \"\"\n", "say why"},
		"ci-only, no img": {"x-1-amd64", strings.SplitN(goodRow, "here:", 2)[0] + "not_here: no archive\n", "needs a container"},
		"not yaml":        {"x-1-amd64", "name: [", "yaml"},
	} {
		_, err := LoadRow(writeRow(t, t.TempDir(), c.file, c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", name, err, c.want)
		}
	}
}

func TestSelect(t *testing.T) {
	rows := []Row{
		{Name: "a", Here: &HereSpec{}},
		{Name: "b", NotHere: "no archive"},
		{Name: "c", Here: &HereSpec{}},
	}
	all, err := Select(rows, "all")
	if err != nil || len(all) != 2 || all[0].Name != "a" || all[1].Name != "c" {
		t.Fatalf("all = %v %v", all, err)
	}
	if one, err := Select(rows, "c"); err != nil || len(one) != 1 {
		t.Fatalf("c = %v %v", one, err)
	}
	if two, err := Select(rows, "c,a,c"); err != nil || len(two) != 2 || two[0].Name != "c" || two[1].Name != "a" {
		t.Fatalf("c,a,c = %v %v", two, err)
	}
	if _, err := Select(rows, "a,b"); err == nil {
		t.Fatal("a list with a row that cannot run here was accepted")
	}
	if _, err := Select(rows, "b"); err == nil || !strings.Contains(err.Error(), "no archive") {
		t.Fatalf("b: %v, want the reason it cannot run", err)
	}
	if _, err := Select(rows, "zz"); err == nil || !strings.Contains(err.Error(), "a, b, c") {
		t.Fatalf("zz: %v, want the list of rows", err)
	}
}

func TestFindPackages(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"notqmail_1.0-1_amd64.deb", "notqmail_1.0-1_arm64.deb", "notqmail-1.0-1.x86_64.rpm",
		"notqmail_1.0-r0_x86_64.apk", "notqmail-pop3_1.0-1_amd64.deb", "SHA256SUMS"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o644)
	}
	got, err := FindPackages(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"amd64/deb": "notqmail_1.0-1_amd64.deb", "arm64/deb": "notqmail_1.0-1_arm64.deb",
		"amd64/rpm": "notqmail-1.0-1.x86_64.rpm", "amd64/apk": "notqmail_1.0-r0_x86_64.apk"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if filepath.Base(got[k]) != v {
			t.Errorf("%s = %s, want %s", k, got[k], v)
		}
	}
}
