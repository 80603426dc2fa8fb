package manifest

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxChanges bounds the changelog lines carried into a package.
const maxChanges = 200

// maxItem is the longest changelog entry.
const maxItem = 76

// Changes returns the entries of the newest section of the project's changelog
// (packaging/etc/changelog): the "- " items up to the second "## " heading, one line
// each.
func Changes(changelog []byte) ([]string, error) {
	var items []string
	sections := 0
	sc := bufio.NewScanner(bytes.NewReader(changelog))
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), " \t")
		switch {
		case strings.HasPrefix(l, "## "):
			sections++
		case sections == 1 && strings.HasPrefix(l, "- "):
			items = append(items, strings.TrimPrefix(l, "- "))
		case sections == 1 && strings.HasPrefix(l, "  ") && len(items) > 0:
			return nil, fmt.Errorf("changelog: entry %q continues on a second line; keep each to one line", items[len(items)-1])
		}
		if sections > 1 || len(items) > maxChanges {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, it := range items {
		// Debian changelog lines stay within 80 columns, after "  * ".
		if len(it) > maxItem {
			return nil, fmt.Errorf("changelog: entry longer than %d characters: %q", maxItem, it)
		}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("changelog: no \"- \" entries under its first \"## \" heading")
	}
	return items, nil
}

// ChangelogFile is the generated changelog under Sources.Gen, in the YAML that nfpm
// turns into the deb's changelog.Debian.gz and the rpm's %changelog.
const ChangelogFile = "changelog.yml"

// changelogEntry is one entry of that YAML (github.com/goreleaser/chglog's format).
type changelogEntry struct {
	Semver   string    `yaml:"semver"`
	Date     time.Time `yaml:"date"`
	Packager string    `yaml:"packager"`
	Deb      struct {
		Urgency       string   `yaml:"urgency"`
		Distributions []string `yaml:"distributions"`
	} `yaml:"deb"`
	Changes []struct {
		Note string `yaml:"note"`
	} `yaml:"changes"`
}

// ChangelogYAML renders the packages' changelog for a build: one entry for the build's
// version with the newest section of the project's changelog, signed by the
// maintainer at the build's time, so two builds are identical.
func ChangelogYAML(meta Meta, changelog []byte) ([]byte, error) {
	items, err := Changes(changelog)
	if err != nil {
		return nil, err
	}
	var e changelogEntry
	e.Semver = meta.Version.Deb()
	e.Date = meta.MTime.UTC()
	e.Packager = meta.Maintainer
	e.Deb.Urgency = "medium"
	e.Deb.Distributions = []string{"unstable"}
	for _, it := range items {
		e.Changes = append(e.Changes, struct {
			Note string `yaml:"note"`
		}{it})
	}
	return yaml.Marshal([]changelogEntry{e})
}
