package release

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/packaging/manifest"
	"go.yaml.in/yaml/v3"
)

// .goreleaser.yaml is what the manifest generates: one source of truth.
func TestGoreleaserConfigMatchesManifest(t *testing.T) {
	var log bytes.Buffer
	want, err := GoreleaserYAML(context.Background(), Options{Root: absRoot(t), Build: t.TempDir(), Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	got, err := os.ReadFile(filepath.Join(root, manifest.GoreleaserFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs from the manifest from line %d:\n  committed: %q\n  manifest:  %q\nrun: go run mage.go goreleaserConfig", manifest.GoreleaserFile, i+1, g, w)
			}
		}
	}
	// Spot checks that the generated file says what the packages need.
	var c struct {
		NFPMs []struct {
			ID       string
			Contents []struct {
				Src, Dst, Type, Packager string
				FileInfo                 struct {
					Owner, Group string
					Mode         uint32
				} `yaml:"file_info"`
			}
		}
	}
	if err := yaml.Unmarshal(got, &c); err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, n := range c.NFPMs {
		for _, ct := range n.Contents {
			switch {
			case ct.Dst == "/usr/lib/notqmail/bin/qmail-queue":
				found["qmail-queue"] = ct.FileInfo.Mode == 0o4711 && ct.FileInfo.Owner == "qmailq"
			case ct.Dst == "/etc/qmail/defaultdelivery" && ct.Packager == "deb":
				found["conffile"] = ct.Type == "config|noreplace"
			case ct.Dst == "/var/qmail/alias":
				found["alias"] = ct.FileInfo.Mode == 0o2755 && ct.FileInfo.Owner == "alias"
			}
		}
	}
	for _, k := range []string{"qmail-queue", "conffile", "alias"} {
		if !found[k] {
			t.Errorf("%s: %s entry missing or wrong", manifest.GoreleaserFile, k)
		}
	}
}
