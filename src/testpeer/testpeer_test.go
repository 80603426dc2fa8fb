package testpeer

import "testing"

func TestDebianPackagesUniqueSorted(t *testing.T) {
	p := DebianPackages()
	for i := 1; i < len(p); i++ {
		if p[i-1] >= p[i] {
			t.Fatalf("not sorted and unique: %v", p)
		}
	}
}

func TestNeedFindsShell(t *testing.T) {
	if Need(t, "sh") == "" {
		t.Fatal("no path for sh")
	}
}
