package release

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestVersionStrings(t *testing.T) {
	cases := []struct {
		v         Version
		str, apk  string
		metadata  string
		describes string
	}{
		{Version{Base: "1.2.3", Tagged: true}, "1.2.3", "1.2.3", "", "v1.2.3-0-gabc1234"},
		{Version{Base: "1.2.3", Pre: "rc1", Tagged: true}, "1.2.3-rc1", "1.2.3_rc1", "", "v1.2.3-rc1-0-gabc1234"},
		{Version{Base: "1.2.3", Commits: 4, Hash: "abc1234", Tagged: true}, "1.2.3+4.gabc1234", "1.2.3_p4", "4.gabc1234", "1.2.3-4-gabc1234"},
		{Version{Base: "1.2.3", Commits: 4, Hash: "abc1234", Dirty: true, Tagged: true}, "1.2.3+4.gabc1234.dirty", "1.2.3_p4", "4.gabc1234.dirty", "v1.2.3-4-gabc1234-dirty"},
		{Version{Base: "0.0.0", Commits: 17, Hash: "abc1234"}, "0.0.0+git17.abc1234", "0.0.0_git17", "git17.abc1234", ""},
		{Version{Base: "2.0", Pre: "weird.x", Tagged: true}, "2.0-weird.x", "2.0_pre", "", ""},
	}
	for _, c := range cases {
		if got := c.v.String(); got != c.str {
			t.Errorf("%+v String = %q, want %q", c.v, got, c.str)
		}
		if got := c.v.APK(); got != c.apk {
			t.Errorf("%+v APK = %q, want %q", c.v, got, c.apk)
		}
		if got := c.v.Metadata(); got != c.metadata {
			t.Errorf("%+v Metadata = %q, want %q", c.v, got, c.metadata)
		}
		if c.describes != "" {
			got, err := parseDescribe(c.describes)
			if err != nil {
				t.Errorf("parseDescribe(%q): %v", c.describes, err)
			} else if got != c.v {
				t.Errorf("parseDescribe(%q) = %+v, want %+v", c.describes, got, c.v)
			}
		}
	}
}

func TestParseVersionRejectsGarbage(t *testing.T) {
	for _, s := range []string{"", "abc", "1..2", "1.2-rc 1", "1.2-r/c", "1.2.3\nrm -rf"} {
		if v, err := ParseVersion(s); err == nil {
			t.Errorf("ParseVersion(%q) = %+v, want error", s, v)
		}
	}
	if _, err := parseDescribe("no-hash-here"); err == nil {
		t.Error("parseDescribe accepted output without a hash")
	}
}

func gitRepo(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_DATE=@1700000000 +0000", "GIT_COMMITTER_DATE=@1700000000 +0000",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	run("init", "-q")
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("add", "f")
	run("commit", "-q", "-m", "one")
	return dir
}

func TestDetectVersionFromGit(t *testing.T) {
	dir := gitRepo(t)
	v, err := DetectVersion(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v.Base != "0.0.0" || v.Tagged || v.Commits != 1 || len(v.Hash) != 7 || v.Dirty {
		t.Fatalf("untagged tree: got %+v", v)
	}

	// A VERSION file wins over the commit fallback when there is no tag.
	if err := os.WriteFile(filepath.Join(dir, "VERSION"), []byte("3.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v, err = DetectVersion(dir); err != nil || v.String() != "3.1" {
		t.Fatalf("VERSION file: got %+v, %v", v, err)
	}

	// A tag wins over everything; an edit makes the tree dirty.
	if out, err := exec.Command("git", "-C", dir, "tag", "v1.4").CombinedOutput(); err != nil {
		t.Fatalf("git tag: %v %s", err, out)
	}
	if v, err = DetectVersion(dir); err != nil || v.String() != "1.4" {
		t.Fatalf("tagged: got %q, %v", v.String(), err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v, err = DetectVersion(dir); err != nil || v.String() != "1.4+dirty" {
		t.Fatalf("tagged dirty: got %q, %v", v.String(), err)
	}

	// A broken VERSION file is an error naming the file, not a silent fallback.
	dir2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir2, "VERSION"), []byte("latest\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := DetectVersion(dir2); err == nil {
		t.Fatal("bad VERSION file accepted")
	}
}

func TestSourceDate(t *testing.T) {
	dir := gitRepo(t)
	t.Setenv("SOURCE_DATE_EPOCH", "")
	os.Unsetenv("SOURCE_DATE_EPOCH")
	got, err := SourceDate(dir)
	if err != nil || !got.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("commit time: got %v, %v", got, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1234567890")
	if got, err = SourceDate(dir); err != nil || got.Unix() != 1234567890 {
		t.Fatalf("SOURCE_DATE_EPOCH: got %v, %v", got, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err = SourceDate(dir); err == nil {
		t.Fatal("bad SOURCE_DATE_EPOCH accepted")
	}
}
