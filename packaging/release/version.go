// Package release turns the source tree into release artefacts: it works out the
// version, cross-builds the programs, and writes the packages and checksums into dist/.
// The magefile's targets are thin calls into this package.
package release

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Version is the version a build is stamped with, split into the parts that each
// package format spells differently.
type Version struct {
	Base    string // dotted numbers: "1.2.3"
	Pre     string // pre-release without its dash: "rc1"; empty for a release
	Commits int    // commits since the tag (or since the start, without a tag)
	Hash    string // abbreviated commit hash; empty for an exact tag or a VERSION file
	Dirty   bool   // the work tree had uncommitted changes
	Tagged  bool   // Base came from a tag or a VERSION file
	Site    int    // site patch revision (site.go); 0 for an upstream build
}

// String is the version stamped into the binaries: "1.2.3", "1.2.3-rc1",
// "1.2.3+4.gabc1234.dirty", "0.0.0+git17.abc1234".
func (v Version) String() string {
	s := v.Base
	if v.Pre != "" {
		s += "-" + v.Pre
	}
	if m := v.Metadata(); m != "" {
		s += "+" + m
	}
	return s
}

// Metadata is the build metadata after "+": empty for an exact clean tag. Without a
// tag it carries the commit count before the hash so that later builds sort higher,
// which package upgrades rely on.
func (v Version) Metadata() string {
	var parts []string
	switch {
	case !v.Tagged && v.Hash != "":
		parts = append(parts, fmt.Sprintf("git%d", v.Commits), v.Hash)
	case v.Hash != "":
		parts = append(parts, strconv.Itoa(v.Commits), "g"+v.Hash)
	}
	if v.Dirty {
		parts = append(parts, "dirty")
	}
	return strings.Join(v.siteMeta(parts), ".")
}

// APK is the version in Alpine's grammar, which allows only known suffixes followed by
// numbers: a pre-release becomes _rcN (or _pre), commits past a tag _pN, and an
// untagged build _gitN with N the commit count.
func (v Version) APK() string {
	s := v.Base
	if v.Pre != "" {
		m := apkPre.FindStringSubmatch(v.Pre)
		if m != nil {
			s += "_" + m[1] + m[2]
		} else {
			s += "_pre"
		}
	}
	switch {
	case !v.Tagged && v.Hash != "":
		s += fmt.Sprintf("_git%d", v.Commits)
	case v.Commits > 0:
		s += fmt.Sprintf("_p%d", v.Commits)
	}
	return v.siteAPK(s)
}

var (
	apkPre   = regexp.MustCompile(`^(alpha|beta|pre|rc)\.?([0-9]*)$`)
	baseRE   = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)
	preRE    = regexp.MustCompile(`^[0-9A-Za-z.]+$`)
	hashRE   = regexp.MustCompile(`^[0-9a-f]{4,40}$`)
	describe = regexp.MustCompile(`^(.*)-([0-9]+)-g([0-9a-f]+)$`)
)

// ParseVersion parses a tag or VERSION-file string such as "v1.2.3" or "1.2.3-rc1".
func ParseVersion(s string) (Version, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "v")
	s = strings.TrimPrefix(s, "notqmail-")
	base, pre, _ := strings.Cut(s, "-")
	if !baseRE.MatchString(base) {
		return Version{}, fmt.Errorf("version %q: want numbers and dots, like 1.2.3", s)
	}
	if pre != "" && !preRE.MatchString(pre) {
		return Version{}, fmt.Errorf("version %q: pre-release %q may hold only letters, digits and dots", s, pre)
	}
	return Version{Base: base, Pre: pre, Tagged: true}, nil
}

// parseDescribe parses `git describe --tags --dirty --long` output:
// "v1.2.3-4-gabc1234[-dirty]".
func parseDescribe(s string) (Version, error) {
	s = strings.TrimSpace(s)
	dirty := strings.HasSuffix(s, "-dirty")
	s = strings.TrimSuffix(s, "-dirty")
	m := describe.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("git describe gave %q, want TAG-N-gHASH", s)
	}
	v, err := ParseVersion(m[1])
	if err != nil {
		return Version{}, err
	}
	v.Commits, _ = strconv.Atoi(m[2])
	if v.Commits > 0 {
		v.Hash = m[3]
	}
	v.Dirty = dirty
	return v, nil
}

// DetectVersion works out the version of the tree at dir: the nearest tag
// (git describe), else a VERSION file, else 0.0.0 with the commit count and hash.
func DetectVersion(dir string) (Version, error) {
	if out, err := git(dir, "describe", "--tags", "--dirty", "--long", "--match", "*[0-9]*"); err == nil {
		return parseDescribe(out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "VERSION")); err == nil {
		v, err := ParseVersion(string(b))
		if err != nil {
			return Version{}, fmt.Errorf("VERSION: %w", err)
		}
		return v, nil
	} else if !os.IsNotExist(err) {
		return Version{}, err
	}
	hash, err := git(dir, "rev-parse", "--short=7", "HEAD")
	if err != nil {
		// Not a git tree and no VERSION file: still buildable, clearly unversioned.
		return Version{Base: "0.0.0"}, nil
	}
	v := Version{Base: "0.0.0", Hash: strings.TrimSpace(hash)}
	if !hashRE.MatchString(v.Hash) {
		return Version{}, fmt.Errorf("git rev-parse gave %q", v.Hash)
	}
	if n, err := git(dir, "rev-list", "--count", "HEAD"); err == nil {
		v.Commits, _ = strconv.Atoi(strings.TrimSpace(n))
	}
	if st, err := git(dir, "status", "--porcelain", "--untracked-files=no"); err == nil {
		v.Dirty = strings.TrimSpace(st) != ""
	}
	return v, nil
}

// SourceDate is the time stamped on every file in the packages: SOURCE_DATE_EPOCH when
// set, else the last commit's time, else the Unix epoch. The same commit therefore
// always gives the same packages.
func SourceDate(dir string) (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	out, err := git(dir, "log", "-1", "--format=%ct")
	if err != nil {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("git log gave %q for the commit time", out)
	}
	return time.Unix(n, 0).UTC(), nil
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}
