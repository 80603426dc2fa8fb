package matrix

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// keep writes a kept build of version with core debs for arches into work/history,
// dated age ago.
func keep(t *testing.T, work, version string, age time.Duration, arches ...string) {
	t.Helper()
	dir := filepath.Join(work, "history", version)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "VERSION"), []byte(version+"\n"), 0o644)
	for _, a := range arches {
		os.WriteFile(filepath.Join(dir, "notqmail_"+version+"-1_"+a+".deb"), nil, 0o644)
	}
	when := time.Now().Add(-age)
	os.Chtimes(dir, when, when)
}

// The build to upgrade from covers every architecture of the run when a kept one
// does, even if a newer one (a run of a single foreign row) covers only some.
func TestRecalledPrefersACompleteBuild(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg orders the versions")
	}
	work := t.TempDir()
	keep(t, work, "0.0.0+git489.aaaaaaa", 3*time.Hour, "amd64")
	keep(t, work, "0.0.0+git490.bbbbbbb", 2*time.Hour, "amd64", "arm64")
	keep(t, work, "0.0.0+git491.ccccccc", time.Hour, "arm64")
	pk, v := recalled(work, "0.0.0+git492.ddddddd", []string{"amd64", "arm64"})
	if v != "0.0.0+git490.bbbbbbb" || pk[pkgKey("amd64", "deb")] == "" || pk[pkgKey("arm64", "deb")] == "" {
		t.Errorf("recalled %s %v, want the complete 0.0.0+git490.bbbbbbb", v, pk)
	}
	// With no complete one, the newest that has any of them.
	pk, v = recalled(work, "0.0.0+git492.ddddddd", []string{"amd64", "armhf"})
	if v != "0.0.0+git490.bbbbbbb" {
		t.Errorf("recalled %s %v, want the newest with amd64, 0.0.0+git490.bbbbbbb", v, pk)
	}
	// Only older builds count.
	if _, v := recalled(work, "0.0.0+git490.bbbbbbb", []string{"amd64", "arm64"}); v != "0.0.0+git489.aaaaaaa" {
		t.Errorf("recalled %s for 0.0.0+git490, want the older 0.0.0+git489.aaaaaaa", v)
	}
}
