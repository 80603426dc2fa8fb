package patches

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/packaging/release"
	"github.com/notqmail/notqmail/src/testpeer"
)

// The spellings nfpm gives a release.Version in each format (manifest.Package passes
// Base, Pre and Metadata; the deb and rpm release is 1, the apk's r0).
func debVersion(v release.Version) string { return nfpmVersion(v, "~") + "-1" }
func rpmVersion(v release.Version) string { return nfpmVersion(v, "~") }
func apkVersion(v release.Version) string { return v.APK() + "-r0" }

func nfpmVersion(v release.Version, pre string) string {
	s := v.Base
	if v.Pre != "" {
		s += pre + v.Pre
	}
	if m := v.Metadata(); m != "" {
		s += "+" + m
	}
	return s
}

func withSite(v release.Version, n int) release.Version { v.Site = n; return v }

// pair is "a sorts before b".
type pair struct{ what, a, b string }

func orderings(t *testing.T) (deb, rpm, apk []pair) {
	t.Helper()
	tag := release.Version{Base: "1.2.3", Tagged: true}
	snap := release.Version{Base: "1.2.3", Tagged: true, Commits: 4, Hash: "abc1234"}
	untagged := release.Version{Base: "0.0.0", Commits: 17, Hash: "abc1234"}
	pre := release.Version{Base: "1.3.0", Pre: "rc1", Tagged: true}
	next := func(v release.Version) release.Version {
		v.Commits++
		v.Hash = "def5678"
		return v
	}
	cases := []struct {
		name     string
		v        release.Version
		releases []release.Version // later upstream releases
	}{
		{"release 1.2.3", tag, []release.Version{{Base: "1.2.4", Tagged: true}, {Base: "1.2.4", Pre: "rc1", Tagged: true}, {Base: "1.3", Tagged: true}}},
		{"snapshot 1.2.3+4", snap, []release.Version{{Base: "1.2.4", Tagged: true}, {Base: "1.2.4", Pre: "rc1", Tagged: true}}},
		{"untagged", untagged, []release.Version{{Base: "0.0.1", Tagged: true}, {Base: "1.0.0", Tagged: true}}},
		{"pre-release 1.3.0-rc1", pre, []release.Version{{Base: "1.3.0", Tagged: true}, {Base: "1.3.0", Pre: "rc2", Tagged: true}}},
	}
	add := func(what string, a, b release.Version) {
		deb = append(deb, pair{what, debVersion(a), debVersion(b)})
		rpm = append(rpm, pair{what, rpmVersion(a), rpmVersion(b)})
		apk = append(apk, pair{what, apkVersion(a), apkVersion(b)})
	}
	for _, c := range cases {
		s1, s2 := withSite(c.v, 1), withSite(c.v, 2)
		add(c.name+": upstream < site1", c.v, s1)
		add(c.name+": site1 < site2", s1, s2)
		add(c.name+": site2 < next upstream snapshot", s2, next(c.v))
		add(c.name+": site2 < site1 on the next snapshot", s2, withSite(next(c.v), 1))
		for _, r := range c.releases {
			add(c.name+": site2 < release "+r.String(), s2, r)
			add(c.name+": site2 < site1 on release "+r.String(), s2, withSite(r, 1))
		}
	}
	return deb, rpm, apk
}

func TestSiteSuffixSpelling(t *testing.T) {
	for _, c := range []struct {
		v             release.Version
		deb, rpm, apk string
	}{
		{release.Version{Base: "1.2.3", Tagged: true, Site: 1}, "1.2.3+0.site1-1", "1.2.3+0.site1", "1.2.3_p0_p1-r0"},
		{release.Version{Base: "1.2.3", Tagged: true, Commits: 4, Hash: "abc1234", Site: 2}, "1.2.3+4.gabc1234.site2-1", "1.2.3+4.gabc1234.site2", "1.2.3_p4_p2-r0"},
		{release.Version{Base: "0.0.0", Commits: 17, Hash: "abc1234", Site: 3}, "0.0.0+git17.abc1234.site3-1", "0.0.0+git17.abc1234.site3", "0.0.0_git17_p3-r0"},
		{release.Version{Base: "1.3.0", Pre: "rc1", Tagged: true, Site: 1}, "1.3.0~rc1+0.site1-1", "1.3.0~rc1+0.site1", "1.3.0_rc1_p0_p1-r0"},
	} {
		if g := debVersion(c.v); g != c.deb {
			t.Errorf("deb %s, want %s", g, c.deb)
		}
		if g := rpmVersion(c.v); g != c.rpm {
			t.Errorf("rpm %s, want %s", g, c.rpm)
		}
		if g := apkVersion(c.v); g != c.apk {
			t.Errorf("apk %s, want %s", g, c.apk)
		}
	}
}

func TestSiteSuffixOrderDpkg(t *testing.T) {
	dpkg := testpeer.Need(t, "dpkg")
	deb, _, _ := orderings(t)
	for _, p := range deb {
		if err := exec.Command(dpkg, "--compare-versions", p.a, "lt", p.b).Run(); err != nil {
			t.Errorf("%s: dpkg says %s is not lt %s", p.what, p.a, p.b)
		}
	}
}

func TestSiteSuffixOrderRPM(t *testing.T) {
	rpmBin := testpeer.Need(t, "rpm")
	_, rpm, _ := orderings(t)
	// One rpm run for all pairs: rpm.vercmp is rpm's own version comparison.
	var lua strings.Builder
	for _, p := range rpm {
		fmt.Fprintf(&lua, "print(rpm.vercmp(%q, %q) .. \" \") ", p.a, p.b)
	}
	out, err := exec.Command(rpmBin, "--eval", "%{lua: "+lua.String()+"}").CombinedOutput()
	if err != nil {
		t.Fatalf("rpm: %v: %s", err, out)
	}
	got := strings.Fields(string(out))
	if len(got) != len(rpm) {
		t.Fatalf("rpm printed %d results for %d pairs: %s", len(got), len(rpm), out)
	}
	for i, p := range rpm {
		if got[i] != "-1" {
			t.Errorf("%s: rpm.vercmp(%s, %s) = %s, want -1", p.what, p.a, p.b, got[i])
		}
	}
}

func TestSiteSuffixOrderAPK(t *testing.T) {
	_, _, apk := orderings(t)
	for _, p := range apk {
		c, err := CompareAPK(p.a, p.b)
		if err != nil || c != -1 {
			t.Errorf("%s: apk order of %s and %s is %d (%v), want -1", p.what, p.a, p.b, c, err)
		}
	}
}

// TestAPKRules checks the apk comparison against the rules apk documents.
func TestAPKRules(t *testing.T) {
	ascending := []string{
		"0.9", "1.0_alpha", "1.0_alpha2", "1.0_beta", "1.0_pre1", "1.0_rc", "1.0_rc1", "1.0_rc2",
		"1.0", "1.0-r1", "1.0-r2", "1.0_cvs", "1.0_svn", "1.0_git", "1.0_hg", "1.0_p0", "1.0_p0_p1",
		"1.0_p1", "1.0_p1-r1", "1.0_p1_p1", "1.0_p2", "1.0a", "1.0b", "1.0.1", "1.2", "1.10", "2",
	}
	for i := range ascending {
		for j := range ascending {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			got, err := CompareAPK(ascending[i], ascending[j])
			if err != nil || got != want {
				t.Errorf("CompareAPK(%s, %s) = %d (%v), want %d", ascending[i], ascending[j], got, err, want)
			}
		}
	}
	for _, bad := range []string{"", "v1.0", "1..0", "1.0_foo", "1.0-1", "1.0-r", "1.0_p1x", "1.0 ", "1.0ab", "99999999999999999999"} {
		if _, err := CompareAPK(bad, "1.0"); err == nil {
			t.Errorf("apk version %q accepted", bad)
		}
	}
}
