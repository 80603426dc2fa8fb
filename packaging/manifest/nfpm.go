package manifest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
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
	Bin      string // built binaries for one architecture
	Man      string // rendered man pages: man<N>/<page>.gz
	Etc      string // packaging/etc
	Gen      string // files written by WriteGenerated
	Services string // packaging/services
}

func (s Sources) resolve(e Entry) (string, error) {
	root := map[Origin]string{Binary: s.Bin, ManPage: s.Man, Etc: s.Etc, Generated: s.Gen, Service: s.Services}[e.Origin]
	if root == "" {
		return "", fmt.Errorf("%s: no source directory for its origin %d", e.Path, e.Origin)
	}
	return filepath.Join(root, filepath.FromSlash(e.Source)), nil
}

// Meta is the package metadata that is not a path.
type Meta struct {
	Maintainer string
	MTime      time.Time // stamped on every file and on the package itself
	Version    Version   // for the exact-version dependencies between the packages
}

// DefaultMaintainer is used unless NOTQMAIL_MAINTAINER overrides it.
const DefaultMaintainer = "notqmail developers <notqmail@notqmail.org>"

// scriptFile is a generated maintainer script's name under Sources.Gen.
func scriptFile(pkg string, f Format, s Script) string {
	return pkg + "." + string(s) + "." + string(f)
}

// WriteGenerated writes the files that the packages build from rather than ship from
// the tree: the maintainer scripts and the Debian changelog. Their times are set to
// mtime because the apk records script times.
func (m Manifest) WriteGenerated(dir string, meta Meta, changes []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	write := func(name string, b []byte, mode os.FileMode) error {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			return err
		}
		// WriteFile keeps an existing file's mode.
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
		return os.Chtimes(p, meta.MTime, meta.MTime)
	}
	for _, pkg := range m.PackageNames() {
		for _, f := range Formats {
			scripts, err := Scripts(pkg, f, m.Built)
			if err != nil {
				return err
			}
			for slot, b := range scripts {
				if err := write(scriptFile(pkg, f, slot), b, 0o755); err != nil {
					return err
				}
			}
		}
	}
	cl, err := ChangelogYAML(meta, changes)
	if err != nil {
		return err
	}
	return write(ChangelogFile, cl, 0o644)
}

// PackageNames lists the packages this manifest has entries for, in Packages order.
func (m Manifest) PackageNames() []string {
	seen := map[string]bool{}
	for _, e := range m.Entries {
		seen[e.Pkg()] = true
	}
	var n []string
	for _, p := range Packages {
		if seen[p.Name] {
			n = append(n, p.Name)
		}
	}
	return n
}

func packageDef(name string) (PackageDef, bool) {
	for _, p := range Packages {
		if p.Name == name {
			return p, true
		}
	}
	return PackageDef{}, false
}

// Config generates the nfpm configuration for one package from the manifest. The
// architecture and version are filled in per build by Package.
func (m Manifest) Config(pkg string, src Sources, meta Meta) (nfpm.Config, error) {
	def, ok := packageDef(pkg)
	if !ok {
		return nfpm.Config{}, fmt.Errorf("unknown package %q", pkg)
	}
	cfg := nfpm.Config{Info: nfpm.Info{
		Name:          pkg,
		Platform:      "linux",
		VersionSchema: "none",
		Section:       def.Section,
		Priority:      "optional",
		Maintainer:    meta.Maintainer,
		Homepage:      Homepage,
		Description:   def.Summary + "\n" + def.Description,
		License:       License,
		Changelog:     filepath.Join(src.Gen, ChangelogFile),
		MTime:         meta.MTime,
		// Sources are exact paths; a [ or * in one must not turn into a pattern.
		DisableGlobbing: true,
	}}
	cfg.Overrides = map[string]*nfpm.Overridables{}
	sendmail := pkg == Core && m.Built["sendmail"]
	v := meta.Version
	for _, f := range Formats {
		o := &nfpm.Overridables{}
		scripts, err := Scripts(pkg, f, m.Built)
		if err != nil {
			return nfpm.Config{}, err
		}
		path := func(s Script) string {
			if _, ok := scripts[s]; !ok {
				return ""
			}
			return filepath.Join(src.Gen, scriptFile(pkg, f, s))
		}
		o.Scripts = nfpm.Scripts{PreInstall: path(PreInstall), PostInstall: path(PostInstall), PreRemove: path(PreRemove), PostRemove: path(PostRemove)}
		switch f {
		case Deb:
			if pkg == Core {
				o.Deb.Predepends = []string{"passwd"}
			} else {
				o.Depends = []string{fmt.Sprintf("%s (= %s)", Core, v.Deb())}
			}
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
			o.RPM.Summary = def.Summary
			o.RPM.Group = "System Environment/Daemons"
			if pkg != Core {
				o.Depends = []string{fmt.Sprintf("%s = %s", Core, v.RPM())}
			}
			// No Requires beyond the packages' own: the binaries are static, and the
			// scripts use systemctl and alternatives only where they exist.
			if sendmail {
				o.Provides = []string{"MTA", "smtpdaemon", "server(smtp)"}
			}
		case APK:
			o.APK.Scripts.PreUpgrade = path(PreUpgrade)
			o.APK.Scripts.PostUpgrade = path(PostUpgrade)
			if pkg != Core {
				o.Depends = []string{fmt.Sprintf("%s=%s", Core, v.APKFull())}
			}
			if sendmail {
				// Alpine names commands as cmd: provides; conflicts are negative
				// dependencies (nfpm drops the apk's conflicts field).
				for _, e := range m.Entries {
					if e.Kind == Symlink && e.In(APK) && (strings.HasPrefix(e.Path, "/usr/sbin/") || strings.HasPrefix(e.Path, "/usr/bin/")) {
						o.Provides = append(o.Provides, "cmd:"+filepath.Base(e.Path))
					}
				}
				for _, c := range APKConflicts {
					o.Depends = append(o.Depends, "!"+c)
				}
			}
		}
		cfg.Overrides[string(f)] = o
	}
	for _, e := range m.Entries {
		if e.Pkg() != pkg {
			continue
		}
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
		case File, Config, Doc:
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
		// The rpm marks documentation %doc; other formats have no such mark.
		if e.Kind == Doc && len(e.Formats) == 0 {
			e.Formats = Formats
		}
		// nfpm takes one format per content; an entry for two formats is two contents.
		if len(e.Formats) == 0 {
			cfg.Contents = append(cfg.Contents, c)
			continue
		}
		for _, f := range e.Formats {
			cc := *c
			fi := *c.FileInfo
			cc.FileInfo = &fi
			cc.Packager = string(f)
			if e.Kind == Doc && f == RPM {
				cc.Type = files.TypeRPMDoc
			}
			cfg.Contents = append(cfg.Contents, &cc)
		}
	}
	return cfg, nil
}

// APKConflicts are the Alpine packages that also install /usr/sbin/sendmail.
var APKConflicts = []string{"postfix", "exim", "opensmtpd", "ssmtp", "dma"}

// Homepage is the project's address in the packages.
const Homepage = "https://github.com/notqmail/notqmail"

// License is the packages' licence field. The project has not stated its licence yet
// (see packaging/etc/copyright); the field says so rather than guess one.
const License = "LicenseRef-not-yet-stated"

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

// The package release, the same in every build: "-1" for deb and rpm, "-r0" for apk.
const (
	Release    = "1"
	APKRelease = "r0"
)

func (v Version) upstream() string {
	s := v.Base
	if v.Pre != "" {
		s += "~" + v.Pre
	}
	if v.Meta != "" {
		s += "+" + v.Meta
	}
	return s
}

// Deb is the full Debian version, as dpkg shows it.
func (v Version) Deb() string { return v.upstream() + "-" + Release }

// RPM is VERSION-RELEASE as rpm compares it.
func (v Version) RPM() string { return v.upstream() + "-" + Release }

// APKFull is pkgver as the apk records it.
func (v Version) APKFull() string { return v.APK + "-" + APKRelease }

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
	info.Release = Release
	if f == APK {
		info.Release = APKRelease
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

// SignConfig holds the signing keys; empty fields leave that format unsigned.
type SignConfig struct {
	PGPKey, PGPPass          string // deb and rpm
	APKKey, APKName, APKPass string // apk (RSA)
}

// Apply sets the keys on every format's override of a package configuration.
func (s SignConfig) Apply(cfg *nfpm.Config) {
	for f, o := range cfg.Overrides {
		switch Format(f) {
		case Deb:
			if s.PGPKey != "" {
				o.Deb.Signature.KeyFile, o.Deb.Signature.KeyPassphrase = s.PGPKey, s.PGPPass
				o.Deb.Signature.Type = "origin"
			}
		case RPM:
			if s.PGPKey != "" {
				o.RPM.Signature.KeyFile, o.RPM.Signature.KeyPassphrase = s.PGPKey, s.PGPPass
			}
		case APK:
			if s.APKKey != "" {
				o.APK.Signature.KeyFile, o.APK.Signature.KeyPassphrase = s.APKKey, s.APKPass
				o.APK.Signature.KeyName = s.APKName
			}
		}
	}
}
