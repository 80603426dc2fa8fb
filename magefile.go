//go:build mage

// The notqmail pipeline. Run it without installing mage: go run mage.go [target].
// Each target only calls tested code under packaging/.
package main

import (
	"context"
	"os"

	"github.com/notqmail/notqmail/packaging/demo"
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

// Package builds every program for linux/amd64 and linux/arm64 and writes deb, rpm and apk packages plus SHA256SUMS into dist/.
func Package(ctx context.Context) error {
	arts, err := release.Package(ctx, release.Options{Root: root()})
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
