package release

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/notqmail/notqmail/packaging/manifest"
)

// The signing keys come from the environment; without them packages are unsigned.
const (
	// SignPGPKeyEnv names an (ASCII-armored) OpenPGP secret key file that signs the deb
	// (a debsign-style _gpgorigin member) and the rpm (header signature).
	SignPGPKeyEnv = "NOTQMAIL_SIGN_PGP_KEY"
	// SignPGPPassEnv is that key's passphrase, if it has one.
	SignPGPPassEnv = "NOTQMAIL_SIGN_PGP_PASSPHRASE"
	// SignAPKKeyEnv names a PEM RSA private key file that signs the apk.
	SignAPKKeyEnv = "NOTQMAIL_SIGN_APK_KEY"
	// SignAPKNameEnv is the public key's name the apk records (.SIGN.RSA.<name>), as
	// installed in /etc/apk/keys; default: the maintainer's address + ".rsa.pub".
	SignAPKNameEnv = "NOTQMAIL_SIGN_APK_KEYNAME"
	// SignAPKPassEnv is the apk key's passphrase, if it has one.
	SignAPKPassEnv = "NOTQMAIL_SIGN_APK_PASSPHRASE"
)

// MaintainerEnv overrides the packages' maintainer.
const MaintainerEnv = "NOTQMAIL_MAINTAINER"

func maintainer() string {
	if m := os.Getenv(MaintainerEnv); m != "" {
		return m
	}
	return manifest.DefaultMaintainer
}

func packageVersion(b Built) manifest.Version {
	return manifest.Version{Base: b.Version.Base, Pre: b.Version.Pre, Meta: b.Version.Metadata(), APK: b.Version.APK()}
}

func packageMeta(b Built) manifest.Meta {
	return manifest.Meta{Maintainer: maintainer(), MTime: b.SourceDate, Version: packageVersion(b)}
}

// sign adds the signing keys from the environment to a package configuration. A key
// named but unreadable stops the build: a release silently unsigned is worse than none.
func sign(cfg *manifest.SignConfig) error {
	if k := os.Getenv(SignPGPKeyEnv); k != "" {
		if _, err := os.Stat(k); err != nil {
			return fmt.Errorf("%s: %w", SignPGPKeyEnv, err)
		}
		cfg.PGPKey, cfg.PGPPass = k, os.Getenv(SignPGPPassEnv)
	}
	if k := os.Getenv(SignAPKKeyEnv); k != "" {
		if _, err := os.Stat(k); err != nil {
			return fmt.Errorf("%s: %w", SignAPKKeyEnv, err)
		}
		cfg.APKKey, cfg.APKName, cfg.APKPass = k, os.Getenv(SignAPKNameEnv), os.Getenv(SignAPKPassEnv)
	}
	return nil
}

// writePackages writes every package for every format and architecture and
// SHA256SUMS into a staging directory beside Dist, and only when all of them exist
// replaces the previous build's artifacts in Dist with them. A failure anywhere leaves
// Dist as it was.
func writePackages(o Options, b Built, m manifest.Manifest, src manifest.Sources) ([]Artifact, error) {
	if err := os.MkdirAll(filepath.Dir(o.Dist), 0o755); err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp(filepath.Dir(o.Dist), ".dist-staging-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	var keys manifest.SignConfig
	if o.Sign != nil {
		keys = *o.Sign
	} else if err := sign(&keys); err != nil {
		return nil, err
	}
	meta := packageMeta(b)
	var out []Artifact
	for i, arch := range o.Arches {
		src.Bin = filepath.Join(o.Build, arch)
		for _, pkg := range m.PackageNames() {
			// The sub-packages hold links, units and pages, no binaries: one package for
			// every architecture, written once.
			a := arch
			if !m.HasBinaries(pkg) {
				if i > 0 {
					continue
				}
				a = manifest.ArchAll
			}
			cfg, err := m.Config(pkg, src, meta)
			if err != nil {
				return nil, err
			}
			keys.Apply(&cfg)
			for _, f := range manifest.Formats {
				var buf bytes.Buffer
				name, err := manifest.Package(cfg, f, a, meta.Version, &buf)
				if err != nil {
					return nil, err
				}
				if err := WriteAtomic(filepath.Join(stage, name), buf.Bytes()); err != nil {
					return nil, err
				}
				o.step("built %s (%s)", name, humanSize(int64(buf.Len())))
				out = append(out, Artifact{Name: name, Size: int64(buf.Len())})
			}
		}
	}
	sums, err := Checksums(stage, out)
	if err != nil {
		return nil, err
	}
	if err := WriteAtomic(filepath.Join(stage, SumsFile), sums); err != nil {
		return nil, err
	}
	out = append(out, Artifact{Name: SumsFile, Size: int64(len(sums))})
	if err := PublishStaged(stage, o.Dist, out); err != nil {
		return nil, err
	}
	o.step("wrote %d files into %s", len(out), rel(o.Root, o.Dist))
	return out, nil
}
