package release

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func touch(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A binary that arrives under src/cmd is picked up without a code change; a directory
// with only tests or no Go files is not a binary.
func TestCommandsFollowsSrcCmd(t *testing.T) {
	root := t.TempDir()
	touch(t, filepath.Join(root, "src/cmd/notqmail/main.go"))
	cmds, err := Commands(root)
	if err != nil || !slices.Equal(cmds, []string{"notqmail"}) {
		t.Fatalf("before: %q, %v", cmds, err)
	}
	touch(t, filepath.Join(root, "src/cmd/qmail-queue/main.go"))
	touch(t, filepath.Join(root, "src/cmd/onlytests/x_test.go"))
	touch(t, filepath.Join(root, "src/cmd/README/notes.txt"))
	cmds, err = Commands(root)
	if err != nil || !slices.Equal(cmds, []string{"notqmail", "qmail-queue"}) {
		t.Fatalf("after: %q, %v", cmds, err)
	}
	if _, err := Commands(t.TempDir()); err == nil {
		t.Error("a tree without src/cmd/notqmail was accepted")
	}
}

func TestDistHoldsOneBuild(t *testing.T) {
	dist := t.TempDir()
	for _, n := range []string{"old_1.deb", "old-1.rpm", "old_1.apk", SumsFile, "notes.txt"} {
		os.WriteFile(filepath.Join(dist, n), []byte(n), 0o644)
	}
	if err := removeOldArtifacts(dist); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dist)
	if len(ents) != 1 || ents[0].Name() != "notes.txt" {
		t.Errorf("left %v; want only notes.txt", ents)
	}

	arts := []Artifact{{Name: "b.rpm"}, {Name: "a.deb"}}
	for _, a := range arts {
		os.WriteFile(filepath.Join(dist, a.Name), []byte("data "+a.Name), 0o644)
	}
	sums, err := Checksums(dist, arts)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(sums)), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], "  a.deb") || len(strings.Fields(lines[0])[0]) != 64 {
		t.Errorf("SHA256SUMS:\n%s", sums)
	}
	if _, err := Checksums(dist, []Artifact{{Name: "missing.apk"}}); err == nil {
		t.Error("checksum of a missing file succeeded")
	}
}

func TestSummaryTable(t *testing.T) {
	var b bytes.Buffer
	Summary(&b, "dist/", []Artifact{{"notqmail_1_amd64.deb", 3 << 20}, {SumsFile, 600}})
	out := b.String()
	for _, w := range []string{"dist/", "notqmail_1_amd64.deb", "3.0 MiB", SumsFile, "600 B", "2 files"} {
		if !strings.Contains(out, w) {
			t.Errorf("summary lacks %q:\n%s", w, out)
		}
	}
}

func TestCleanRemovesBuildAndDist(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"build/amd64", "dist", "src"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	var log bytes.Buffer
	if err := Clean(Options{Root: root, Log: &log}); err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]bool{"build": false, "dist": false, "src": true} {
		if _, err := os.Stat(filepath.Join(root, d)); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", d, err == nil, want)
		}
	}
}
