package manifest

import (
	"bytes"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/files"
	"go.yaml.in/yaml/v3"
)

// The goreleaser configuration (.goreleaser.yaml) is generated from the manifest, the
// same nfpm configurations the pipeline builds with, so the two cannot describe
// different packages; a test regenerates it and fails when the committed file differs.

// GoreleaserFile is the generated configuration's name at the top of the tree.
const GoreleaserFile = ".goreleaser.yaml"

// GoreleaserDir is where goreleaser's before-hook writes the rendered man pages and
// generated scripts, and where goreleaser builds (relative to the tree).
const GoreleaserDir = "build/goreleaser"

// GoreleaserSources are the Sources as paths relative to the tree, for goreleaser.
var GoreleaserSources = Sources{
	Bin:      GoreleaserDir + "/dist", // unused: binaries come from goreleaser's builds
	Man:      GoreleaserDir + "/man",
	Etc:      "packaging/etc",
	Gen:      GoreleaserDir + "/gen",
	Services: "packaging/services",
}

// GoreleaserInputs are the build facts the configuration needs.
type GoreleaserInputs struct {
	Commands   []string // binaries under src/cmd
	Arches     []string // GOARCH values
	VersionVar string   // -X target for the version
	Prepare    string   // the before-hook command that writes GoreleaserDir
}

// goreleaser's own templates, used where the pipeline puts a build's values.
const (
	grVersion = "{{ .Version }}"
	grMTime   = "{{ .CommitDate }}"
)

type grBuild struct {
	ID           string   `yaml:"id"`
	Main         string   `yaml:"main"`
	Binary       string   `yaml:"binary"`
	Env          []string `yaml:"env"`
	Goos         []string `yaml:"goos"`
	Goarch       []string `yaml:"goarch"`
	Flags        []string `yaml:"flags"`
	Ldflags      []string `yaml:"ldflags"`
	ModTimestamp string   `yaml:"mod_timestamp"`
}

type grFileInfo struct {
	Owner string    `yaml:"owner,omitempty"`
	Group string    `yaml:"group,omitempty"`
	Mode  octalMode `yaml:"mode,omitempty"`
	MTime string    `yaml:"mtime,omitempty"`
}

type grContent struct {
	Src      string      `yaml:"src,omitempty"`
	Dst      string      `yaml:"dst"`
	Type     string      `yaml:"type,omitempty"`
	Packager string      `yaml:"packager,omitempty"`
	FileInfo *grFileInfo `yaml:"file_info,omitempty"`
}

type grScripts struct {
	PreInstall  string `yaml:"preinstall,omitempty"`
	PostInstall string `yaml:"postinstall,omitempty"`
	PreRemove   string `yaml:"preremove,omitempty"`
	PostRemove  string `yaml:"postremove,omitempty"`
}

type grOverride struct {
	Dependencies []string  `yaml:"dependencies,omitempty"`
	Conflicts    []string  `yaml:"conflicts,omitempty"`
	Replaces     []string  `yaml:"replaces,omitempty"`
	Provides     []string  `yaml:"provides,omitempty"`
	Scripts      grScripts `yaml:"scripts,omitempty"`
	Deb          *struct {
		Predepends []string `yaml:"predepends,omitempty"`
	} `yaml:"deb,omitempty"`
	RPM *struct {
		Summary   string `yaml:"summary,omitempty"`
		Group     string `yaml:"group,omitempty"`
		BuildHost string `yaml:"buildhost,omitempty"`
	} `yaml:"rpm,omitempty"`
	APK *struct {
		Scripts struct {
			PreUpgrade  string `yaml:"preupgrade,omitempty"`
			PostUpgrade string `yaml:"postupgrade,omitempty"`
		} `yaml:"scripts"`
	} `yaml:"apk,omitempty"`
}

type grNFPM struct {
	ID               string                `yaml:"id"`
	PackageName      string                `yaml:"package_name"`
	IDs              []string              `yaml:"ids,omitempty"`
	Meta             bool                  `yaml:"meta,omitempty"`
	Formats          []string              `yaml:"formats"`
	FileNameTemplate string                `yaml:"file_name_template"`
	Bindir           string                `yaml:"bindir,omitempty"`
	Maintainer       string                `yaml:"maintainer"`
	Description      string                `yaml:"description"`
	Homepage         string                `yaml:"homepage"`
	License          string                `yaml:"license"`
	Section          string                `yaml:"section"`
	Priority         string                `yaml:"priority"`
	Release          string                `yaml:"release"`
	Changelog        string                `yaml:"changelog"`
	MTime            string                `yaml:"mtime"`
	Contents         []grContent           `yaml:"contents"`
	Overrides        map[string]grOverride `yaml:"overrides"`
}

type grConfig struct {
	Version     int    `yaml:"version"`
	ProjectName string `yaml:"project_name"`
	Dist        string `yaml:"dist"`
	Before      struct {
		Hooks []string `yaml:"hooks"`
	} `yaml:"before"`
	Builds   []grBuild `yaml:"builds"`
	NFPMs    []grNFPM  `yaml:"nfpms"`
	Checksum struct {
		NameTemplate string `yaml:"name_template"`
	} `yaml:"checksum"`
	Archives []struct {
		Formats []string `yaml:"formats"`
	} `yaml:"archives"`
	Changelog struct {
		Disable bool `yaml:"disable"`
	} `yaml:"changelog"`
	Release struct {
		Disable bool `yaml:"disable"`
	} `yaml:"release"`
}

// GoreleaserYAML renders .goreleaser.yaml for the manifest.
func (m Manifest) GoreleaserYAML(in GoreleaserInputs, maintainer string) ([]byte, error) {
	var c grConfig
	c.Version = 2
	c.ProjectName = Core
	c.Dist = GoreleaserDir + "/dist"
	c.Before.Hooks = []string{in.Prepare}
	c.Checksum.NameTemplate = "SHA256SUMS"
	c.Archives = append(c.Archives, struct {
		Formats []string `yaml:"formats"`
	}{[]string{"none"}}) // the packages are the product; no tarballs
	c.Changelog.Disable = true // the packages carry packaging/etc/changelog
	c.Release.Disable = true
	cmds := append([]string{}, in.Commands...)
	sort.Strings(cmds)
	for _, cmd := range cmds {
		c.Builds = append(c.Builds, grBuild{
			ID: cmd, Main: "./src/cmd/" + cmd, Binary: cmd,
			Env: []string{"CGO_ENABLED=0"}, Goos: []string{"linux"}, Goarch: in.Arches,
			Flags:        []string{"-trimpath", "-buildvcs=false"},
			Ldflags:      []string{"-s -w -buildid= -X " + in.VersionVar + "=" + grVersion},
			ModTimestamp: "{{ .CommitTimestamp }}",
		})
	}
	meta := Meta{Maintainer: maintainer, Version: Version{Base: grVersion, APK: grVersion}}
	for _, pkg := range m.PackageNames() {
		cfg, err := m.Config(pkg, GoreleaserSources, meta)
		if err != nil {
			return nil, err
		}
		n, err := m.goreleaserNFPM(pkg, cfg)
		if err != nil {
			return nil, err
		}
		c.NFPMs = append(c.NFPMs, n)
	}
	var b bytes.Buffer
	b.WriteString("# Generated from packaging/manifest by `go run mage.go goreleaserConfig`; do not edit.\n" +
		"# A test fails when this file and the manifest disagree.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (m Manifest) goreleaserNFPM(pkg string, cfg nfpm.Config) (grNFPM, error) {
	n := grNFPM{
		ID: pkg, PackageName: pkg, Formats: formatNames(),
		FileNameTemplate: "{{ .ConventionalFileName }}",
		Maintainer:       cfg.Maintainer, Description: cfg.Description, Homepage: cfg.Homepage,
		License: cfg.License, Section: cfg.Section, Priority: cfg.Priority, Release: Release,
		Changelog: cfg.Changelog, MTime: grMTime,
		Overrides: map[string]grOverride{},
	}
	if m.HasBinaries(pkg) {
		// goreleaser adds the multi-call binary from its build to bindir itself.
		n.IDs, n.Bindir = []string{MultiCall}, LibBin
	} else {
		// No binaries of its own: one package for every architecture.
		n.Meta = true
	}
	for _, ct := range cfg.Contents {
		e, ok := m.Lookup(ct.Destination)
		if !ok {
			return n, fmt.Errorf("%s: not in the manifest", ct.Destination)
		}
		if e.Origin == Binary && e.Source == MultiCall {
			continue
		}
		gc := grContent{Dst: ct.Destination, Type: ct.Type, Packager: ct.Packager, Src: ct.Source}
		if e.Origin == Binary {
			// Another build's binary, from goreleaser's dist directory.
			gc.Src = GoreleaserDir + "/dist/" + e.Source + "_{{ .Os }}_{{ .Arch }}{{ with .Amd64 }}_{{ . }}{{ end }}{{ with .Arm64 }}_{{ . }}{{ end }}/" + e.Source
		}
		if ct.FileInfo != nil && ct.Type != files.TypeSymlink {
			gc.FileInfo = &grFileInfo{Owner: ct.FileInfo.Owner, Group: ct.FileInfo.Group, Mode: modeBits(ct.FileInfo.Mode), MTime: grMTime}
		}
		n.Contents = append(n.Contents, gc)
	}
	for _, f := range Formats {
		o := cfg.Overrides[string(f)]
		g := grOverride{Dependencies: unversioned(o.Depends), Conflicts: o.Conflicts, Replaces: o.Replaces, Provides: o.Provides,
			Scripts: grScripts{o.Scripts.PreInstall, o.Scripts.PostInstall, o.Scripts.PreRemove, o.Scripts.PostRemove}}
		switch f {
		case Deb:
			if len(o.Deb.Predepends) > 0 {
				g.Deb = &struct {
					Predepends []string `yaml:"predepends,omitempty"`
				}{o.Deb.Predepends}
			}
		case RPM:
			g.RPM = &struct {
				Summary   string `yaml:"summary,omitempty"`
				Group     string `yaml:"group,omitempty"`
				BuildHost string `yaml:"buildhost,omitempty"`
			}{o.RPM.Summary, o.RPM.Group, o.RPM.BuildHost}
		case APK:
			if o.APK.Scripts.PreUpgrade != "" || o.APK.Scripts.PostUpgrade != "" {
				g.APK = &struct {
					Scripts struct {
						PreUpgrade  string `yaml:"preupgrade,omitempty"`
						PostUpgrade string `yaml:"postupgrade,omitempty"`
					} `yaml:"scripts"`
				}{}
				g.APK.Scripts.PreUpgrade, g.APK.Scripts.PostUpgrade = o.APK.Scripts.PreUpgrade, o.APK.Scripts.PostUpgrade
			}
		}
		n.Overrides[string(f)] = g
	}
	return n, nil
}

func formatNames() []string {
	var n []string
	for _, f := range Formats {
		n = append(n, string(f))
	}
	return n
}

// octalMode is a mode written as a YAML octal integer (0o4711), as people read modes.
type octalMode uint32

// MarshalYAML writes the mode as an untagged octal scalar that resolves to an integer.
func (o octalMode) MarshalYAML() (any, error) {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: fmt.Sprintf("0o%o", uint32(o))}, nil
}

// modeBits is an entry's mode as Unix permission bits: the manifest writes setuid and
// setgid as the numbers 04000 and 02000, as hier.c does.
func modeBits(m fs.FileMode) octalMode {
	return octalMode(uint32(m) & 0o7777)
}

// unversioned drops the exact-version pins between the packages: goreleaser does not
// expand templates in dependencies, so the pin cannot name the version it builds.
func unversioned(deps []string) []string {
	var out []string
	for _, d := range deps {
		if i := strings.Index(d, grVersion); i >= 0 {
			d = strings.TrimRight(strings.TrimSpace(strings.FieldsFunc(d, func(r rune) bool { return r == ' ' || r == '=' || r == '(' })[0]), " ")
		}
		out = append(out, d)
	}
	return out
}
