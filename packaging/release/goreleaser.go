package release

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/notqmail/notqmail/packaging/manifest"
	"github.com/notqmail/notqmail/packaging/manpage"
)

// GoreleaserVersion is the goreleaser release the configuration is checked with (the
// newest that builds here).
const GoreleaserVersion = "v2.15.1"

// goreleaserPrepare is the before-hook goreleaser runs: it writes what the packages
// take from build/goreleaser (man pages, maintainer scripts, changelog).
const goreleaserPrepare = "go run mage.go goreleaserPrepare"

// hostManifest builds the multi-call binary for this machine, asks it for its
// programs and returns the manifest for the tree with the man pages' list (not
// rendered). It is what .goreleaser.yaml is generated from.
func hostManifest(ctx context.Context, o Options) (manifest.Manifest, []string, error) {
	o = o.withDefaults()
	cmds, err := Commands(o.Root)
	if err != nil {
		return manifest.Manifest{}, nil, err
	}
	dir := filepath.Join(o.Build, "host")
	if err := BuildBinaries(ctx, o.Root, runtime.GOARCH, "host", dir, []string{MultiCall}, o.Log); err != nil {
		return manifest.Manifest{}, nil, err
	}
	progs, err := Programs(ctx, filepath.Join(dir, MultiCall))
	if err != nil {
		return manifest.Manifest{}, nil, err
	}
	pages, err := manpage.List(filepath.Join(o.Root, "src", "man"))
	if err != nil {
		return manifest.Manifest{}, nil, err
	}
	var standalone []string
	for _, c := range cmds {
		if c != MultiCall {
			standalone = append(standalone, c)
		}
	}
	m, err := manifest.New(manifest.Inputs{Programs: progs, Standalone: standalone, Pages: pages})
	return m, cmds, err
}

// GoreleaserYAML generates .goreleaser.yaml's contents for the tree.
func GoreleaserYAML(ctx context.Context, o Options) ([]byte, error) {
	m, cmds, err := hostManifest(ctx, o)
	if err != nil {
		return nil, err
	}
	return m.GoreleaserYAML(manifest.GoreleaserInputs{Commands: cmds, Arches: Arches, VersionVar: VersionVar, Prepare: goreleaserPrepare}, manifest.DefaultMaintainer)
}

// GoreleaserConfig writes .goreleaser.yaml from the manifest.
func GoreleaserConfig(ctx context.Context, o Options) error {
	o = o.withDefaults()
	y, err := GoreleaserYAML(ctx, o)
	if err != nil {
		return err
	}
	p := filepath.Join(o.Root, manifest.GoreleaserFile)
	if err := WriteAtomic(p, y); err != nil {
		return err
	}
	o.step("wrote %s", rel(o.Root, p))
	return nil
}

// GoreleaserPrepare is goreleaser's before-hook: man pages, maintainer scripts and the
// changelog for this tree's version, written under build/goreleaser.
func GoreleaserPrepare(ctx context.Context, o Options) error {
	o = o.withDefaults()
	m, _, err := hostManifest(ctx, o)
	if err != nil {
		return err
	}
	var b Built
	if b.Version, err = DetectVersion(o.Root); err != nil {
		return err
	}
	if b.SourceDate, err = SourceDate(o.Root); err != nil {
		return err
	}
	src := manifest.GoreleaserSources
	man, gen := filepath.Join(o.Root, src.Man), filepath.Join(o.Root, src.Gen)
	for _, d := range []string{man, gen} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	if _, err := manpage.RenderAll(filepath.Join(o.Root, "src", "man"), man); err != nil {
		return err
	}
	changes, err := os.ReadFile(filepath.Join(o.Root, src.Etc, "changelog"))
	if err != nil {
		return err
	}
	if err := m.WriteGenerated(gen, packageMeta(b), changes); err != nil {
		return err
	}
	o.step("wrote man pages and scripts into %s", manifest.GoreleaserDir)
	return nil
}

// GoreleaserCheck installs goreleaser GoreleaserVersion into build/tools when it is
// not there (about 3 minutes and 1.6 GB of memory) and runs `goreleaser check` on
// the committed .goreleaser.yaml.
func GoreleaserCheck(ctx context.Context, o Options) error {
	o = o.withDefaults()
	tools := filepath.Join(o.Build, "tools", "goreleaser-"+GoreleaserVersion)
	bin := filepath.Join(tools, "goreleaser")
	if !fileExists(bin) {
		o.step("installing goreleaser %s into %s (a few minutes)", GoreleaserVersion, rel(o.Root, tools))
		cmd := exec.CommandContext(ctx, goTool(), "install", "github.com/goreleaser/goreleaser/v2@"+GoreleaserVersion)
		// Outside the module, so its requirements do not touch go.mod.
		cmd.Dir = os.TempDir()
		cmd.Env = append(os.Environ(), "GOBIN="+tools, "GOFLAGS=-buildvcs=false")
		cmd.Stdout, cmd.Stderr = o.Log, o.Log
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("installing goreleaser: %w", err)
		}
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "check", "--config", filepath.Join(o.Root, manifest.GoreleaserFile))
	cmd.Dir = o.Root
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	o.Log.Write(out.Bytes())
	if err != nil {
		return fmt.Errorf("goreleaser check: %w", err)
	}
	return nil
}
