package manifest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/apk" // registers the packagers with nfpm
	_ "github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm"
	"go.yaml.in/yaml/v3"
)

// Sources are the directories the entries' sources lie in.
type Sources struct {
	Bin string // built binaries for one architecture
	Man string // rendered man pages: man<N>/<page>.gz
	Etc string // packaging/etc
	Gen string // files written by WriteGenerated
}

func (s Sources) resolve(e Entry) (string, error) {
	root := map[Origin]string{Binary: s.Bin, ManPage: s.Man, Etc: s.Etc, Generated: s.Gen}[e.Origin]
	if root == "" {
		return "", fmt.Errorf("%s: no source directory for its origin %d", e.Path, e.Origin)
	}
	return filepath.Join(root, filepath.FromSlash(e.Source)), nil
}

// Meta is the package metadata that is not a path.
type Meta struct {
	Maintainer string
	MTime      time.Time // stamped on every file and on the package itself
}

// DefaultMaintainer is used unless NOTQMAIL_MAINTAINER overrides it.
const DefaultMaintainer = "notqmail developers <notqmail@notqmail.org>"

// preinstallFile is the generated pre-install script for a format, under Sources.Gen.
func preinstallFile(f Format) string { return "preinstall." + string(f) }

// WriteGenerated writes the files that the packages build from rather than ship from
// the tree: the pre-install scripts. Their times are set to mtime because the apk
// records script times.
func WriteGenerated(dir string, mtime time.Time) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range Formats {
		s, err := PreInstall(f)
		if err != nil {
			return err
		}
		p := filepath.Join(dir, preinstallFile(f))
		if err := os.WriteFile(p, s, 0o755); err != nil {
			return err
		}
		// WriteFile keeps an existing file's mode; scripts must be executable.
		if err := os.Chmod(p, 0o755); err != nil {
			return err
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			return err
		}
	}
	return nil
}

// Config generates the nfpm configuration for the notqmail package from the manifest.
// The architecture and version are filled in per build by Package.
func (m Manifest) Config(src Sources, meta Meta) (nfpm.Config, error) {
	cfg := nfpm.Config{Info: nfpm.Info{
		Name:          "notqmail",
		Platform:      "linux",
		VersionSchema: "none",
		Section:       "mail",
		Priority:      "optional",
		Maintainer:    meta.Maintainer,
		Homepage:      "https://github.com/notqmail/notqmail",
		Description: "qmail-compatible mail transfer agent, written in Go\n" +
			"notqmail keeps qmail's programs, queue, control files and .qmail files,\n" +
			"so it installs over an existing qmail and keeps its mail and setup.",
		MTime: meta.MTime,
		// Sources are exact paths; a [ or * in one must not turn into a pattern.
		DisableGlobbing: true,
	}}
	cfg.Overrides = map[string]*nfpm.Overridables{}
	_, sendmail := m.Lookup("/usr/sbin/sendmail")
	for _, f := range Formats {
		o := &nfpm.Overridables{Scripts: nfpm.Scripts{PreInstall: filepath.Join(src.Gen, preinstallFile(f))}}
		switch f {
		case Deb:
			o.Deb.Predepends = []string{"passwd"}
			if sendmail {
				// A Debian MTA owns /usr/sbin/sendmail outright, so only one may be
				// installed.
				o.Provides = []string{"mail-transport-agent"}
				o.Conflicts = []string{"mail-transport-agent"}
				o.Replaces = []string{"mail-transport-agent"}
			}
		case RPM:
			// The build host's name would make two builds differ.
			o.RPM.BuildHost = "notqmail"
			o.RPM.Summary = "qmail-compatible mail transfer agent, written in Go"
		}
		cfg.Overrides[string(f)] = o
	}
	for _, e := range m.Entries {
		c := &files.Content{
			Destination: e.Path,
			FileInfo:    &files.ContentFileInfo{Owner: e.Owner, Group: e.Group, Mode: e.Mode, MTime: meta.MTime},
		}
		switch e.Kind {
		case Dir:
			c.Type = files.TypeDir
		case Symlink:
			c.Type = files.TypeSymlink
			c.Source = e.Source
		case File, Config:
			s, err := src.resolve(e)
			if err != nil {
				return nfpm.Config{}, err
			}
			c.Source = s
			if e.Kind == Config {
				c.Type = files.TypeConfigNoReplace
			}
		default:
			return nfpm.Config{}, fmt.Errorf("%s: unknown kind %q", e.Path, e.Kind)
		}
		cfg.Contents = append(cfg.Contents, c)
	}
	return cfg, nil
}

// YAML renders a configuration as an nfpm.yaml file.
func YAML(cfg nfpm.Config) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

// Version is a version as each package format spells it.
type Version struct {
	Base, Pre, Meta string // deb and rpm: Base~Pre+Meta
	APK             string // Alpine's grammar
}

// Package writes the package of format f for arch (a GOARCH) to w and returns the
// file name the format's conventions give it.
func Package(cfg nfpm.Config, f Format, arch string, v Version, w io.Writer) (string, error) {
	info, err := cfg.Get(string(f))
	if err != nil {
		return "", err
	}
	info.Arch = arch
	info.Version, info.Prerelease, info.VersionMetadata = v.Base, v.Pre, v.Meta
	if f == APK {
		info.Version, info.Prerelease, info.VersionMetadata = v.APK, "", ""
	}
	info.Release = "1"
	if f == APK {
		info.Release = "r0"
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, string(f)); err != nil {
		return "", fmt.Errorf("%s %s: %w", f, arch, err)
	}
	p, err := nfpm.Get(string(f))
	if err != nil {
		return "", err
	}
	name := p.ConventionalFileName(info)
	if err := p.Package(info, w); err != nil {
		return "", fmt.Errorf("%s %s: %w", f, arch, err)
	}
	return name, nil
}
