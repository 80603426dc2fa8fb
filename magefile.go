//go:build mage

// The notqmail pipeline. Run it without installing mage: go run mage.go [target].
// Each target only calls tested code under packaging/.
package main

import (
	"context"
	"os"

	"github.com/magefile/mage/mg"

	"github.com/notqmail/notqmail/packaging/bench"
	"github.com/notqmail/notqmail/packaging/demo"
	"github.com/notqmail/notqmail/packaging/matrix"
	"github.com/notqmail/notqmail/packaging/patches"
	"github.com/notqmail/notqmail/packaging/release"
	"github.com/notqmail/notqmail/packaging/testrun"
)

// Default is what `go run mage.go` runs.
var Default = Package

// root is the source tree: mage runs targets in the magefile's directory.
func root() string {
	dir, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return dir
}

// Package builds every program for linux/amd64 and linux/arm64 and writes deb, rpm and apk packages plus SHA256SUMS into dist/; with a non-empty patches/series, from a tested, patched copy.
func Package(ctx context.Context) error {
	arts, err := patches.Package(ctx, patches.Options{Release: release.Options{Root: root()}})
	if err != nil {
		return err
	}
	release.Summary(os.Stdout, "dist/", arts)
	return nil
}

// Build builds the binaries only, into build/<arch>/.
func Build(ctx context.Context) error {
	_, err := release.Build(ctx, release.Options{Root: root()})
	return err
}

// Clean removes build/ and dist/.
func Clean() error {
	return release.Clean(release.Options{Root: root()})
}

// Test installs the test peers (as root on Debian), then runs go vet and every test with real peers required.
func Test(ctx context.Context) error {
	return testrun.Run(ctx, testrun.Options{Root: root()})
}

// Demo starts what exists of the MTA in a sandbox under build/demo, listening on 127.0.0.1:2525.
func Demo(ctx context.Context) error {
	return demo.Run(ctx, demo.Options{Root: root()})
}

// Bench runs notqmail and a private Postfix through issue 10's scenarios and writes BENCHMARKS.md and bench/results.json (NOTQMAIL_BENCH_QUICK=1: small counts; NOTQMAIL_BENCH_SCALE=n: scenario 5's size).
func Bench(ctx context.Context) error {
	o, err := bench.FromEnv(root())
	if err != nil {
		return err
	}
	_, err = bench.Run(ctx, o)
	return err
}

// Patches is the site patch overlay (patches/README.md).
type Patches mg.Namespace

// Status applies patches/series to a scratch copy and prints each patch's status.
func (Patches) Status(ctx context.Context) error {
	_, err := patches.Status(ctx, root(), os.Stdout)
	return err
}

// New adds patch NAME to the series and prepares build/patches/work to write it in.
func (Patches) New(ctx context.Context, name string) error {
	return patches.NewPatch(ctx, root(), name, os.Stdout)
}

// Edit prepares build/patches/work to change patch NAME of the series.
func (Patches) Edit(ctx context.Context, name string) error {
	return patches.EditPatch(ctx, root(), name, os.Stdout)
}

// Refresh writes the edits in build/patches/work into the patch being edited.
func (Patches) Refresh(ctx context.Context) error {
	return patches.RefreshPatch(ctx, root(), os.Stdout)
}

// Upgrade checks the series against a new source (a git ref or a directory) and reports what to keep, refresh or drop.
func (Patches) Upgrade(ctx context.Context, to string) error {
	_, err := patches.Upgrade(ctx, root(), to, "", os.Stdout)
	return err
}

// Matrix runs the tested-distribution matrix as root: "all" every row that runs here, else the named distros/ROW (or ROW,ROW); writes distros/MATRIX.md and matrix.json.
func Matrix(ctx context.Context, row string) error {
	_, err := matrix.Main(ctx, matrix.Options{Tree: root(), Row: row})
	return err
}

// Matrixkit stages the test kit and the packages for CI's container rows into dir (CI: build/kit).
func Matrixkit(ctx context.Context, dir string) error {
	return matrix.StageKit(ctx, root(), dir, os.Stdout)
}

// Matrixworkflow regenerates .github/workflows/matrix.yml from distros/*.yaml.
func Matrixworkflow() error {
	return matrix.WriteWorkflow(root())
}

// GoreleaserConfig regenerates .goreleaser.yaml from the package manifest (a test fails when they differ).
func GoreleaserConfig(ctx context.Context) error {
	return release.GoreleaserConfig(ctx, release.Options{Root: root()})
}

// GoreleaserPrepare is goreleaser's before-hook: man pages, scripts and changelog into build/goreleaser.
func GoreleaserPrepare(ctx context.Context) error {
	return release.GoreleaserPrepare(ctx, release.Options{Root: root()})
}

// GoreleaserCheck installs goreleaser v2.15.1 into build/tools if needed (minutes, 1.6 GB) and runs goreleaser check.
func GoreleaserCheck(ctx context.Context) error {
	return release.GoreleaserCheck(ctx, release.Options{Root: root()})
}
