package matrix

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/notqmail/notqmail/packaging/release"
)

// PreviousEnv names the previous build to upgrade from: a git revision of the tree
// (default HEAD~1), or a directory holding its packages.
const PreviousEnv = "NOTQMAIL_MATRIX_PREVIOUS"

// BuildPackages builds the tree's packages for arches into work/current, and the
// previous build's into work/previous/<commit> (kept, so it is built once per commit).
// A previous build that cannot be had is not an error: the upgrade cells say why.
func BuildPackages(ctx context.Context, tree, work string, arches []string, previous string, log io.Writer) (Packages, error) {
	var p Packages
	cur := filepath.Join(work, "current")
	if err := os.RemoveAll(cur); err != nil {
		return p, err
	}
	// Others may commit while this runs: pin the commit the build starts from, so
	// that "HEAD~1" means the commit before the one under test.
	head, headErr := gitOut(ctx, tree, "rev-parse", "--verify", "HEAD^{commit}")
	fmt.Fprintf(log, "matrix: building the packages under test (%s)\n", strings.Join(arches, ", "))
	v, err := release.DetectVersion(tree)
	if err != nil {
		return p, err
	}
	p.Version = v.String()
	if _, err := release.Package(ctx, release.Options{Root: tree, Build: filepath.Join(cur, "build"),
		Dist: filepath.Join(cur, "dist"), Arches: arches, Log: log}); err != nil {
		return p, fmt.Errorf("building the packages under test: %w", err)
	}
	if p.Current, err = FindPackages(filepath.Join(cur, "dist")); err != nil {
		return p, err
	}
	if previous == "" {
		previous = "HEAD~1"
	}
	if st, err := os.Stat(previous); err == nil && st.IsDir() {
		p.Previous, err = FindPackages(previous)
		p.PreviousVersion = "from " + previous
		if err != nil || len(p.Previous) == 0 {
			p.PreviousWhy = fmt.Sprintf("no packages in %s (%v)", previous, err)
		}
		return p, nil
	}
	if headErr == nil && strings.HasPrefix(previous, "HEAD") {
		previous = head + strings.TrimPrefix(previous, "HEAD")
	}
	prev, ver, err := buildRevision(ctx, tree, work, previous, log)
	if err != nil {
		p.PreviousWhy = fmt.Sprintf("building %s failed: %s", previous, firstLine(err.Error()))
		fmt.Fprintf(log, "matrix: %s\n", p.PreviousWhy)
		return p, nil
	}
	p.Previous, p.PreviousVersion = prev, ver
	return p, nil
}

// buildRevision builds the packages of one git revision with that revision's own
// pipeline (go run mage.go package), in a throwaway clone that shares the tree's
// objects, so the tree and its repository are left alone.
func buildRevision(ctx context.Context, tree, work, rev string, log io.Writer) (map[string]string, string, error) {
	commit, err := gitOut(ctx, tree, "rev-parse", "--verify", rev+"^{commit}")
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(work, "previous", commit[:12])
	src := filepath.Join(dir, "src")
	dist := filepath.Join(src, "dist")
	if pk, err := FindPackages(dist); err == nil && len(pk) > 0 {
		if v, err := release.DetectVersion(src); err == nil {
			return pk, v.String(), nil
		}
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	fmt.Fprintf(log, "matrix: building the previous build, %s (%s), to upgrade from\n", rev, commit[:12])
	if _, err := gitOut(ctx, tree, "clone", "--quiet", "--shared", "--no-checkout", tree, src); err != nil {
		return nil, "", err
	}
	if _, err := gitOut(ctx, src, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit); err != nil {
		return nil, "", err
	}
	v, err := release.DetectVersion(src)
	if err != nil {
		return nil, "", err
	}
	cmd := exec.CommandContext(ctx, goTool(), "run", "mage.go", "package")
	cmd.Dir = src
	var tail bytes.Buffer
	cmd.Stdout = io.MultiWriter(log, &tail)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		return nil, "", fmt.Errorf("go run mage.go package at %s: %v: %s", commit[:12], err, lastLine(tail.String()))
	}
	pk, err := FindPackages(dist)
	return pk, v.String(), err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func goTool() string {
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}
func gitOut(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// FindPackages maps "arch/format" to the notqmail core package in dir, recognising
// each format's architecture spelling (amd64/x86_64/x86-64, arm64/aarch64).
func FindPackages(dir string) (map[string]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range ents {
		name := e.Name()
		format := strings.TrimPrefix(filepath.Ext(name), ".")
		if format != "deb" && format != "rpm" && format != "apk" {
			continue
		}
		// Only the core package: split packages (notqmail-pop3, ...) are not what the
		// kit installs.
		base := strings.TrimPrefix(name, "notqmail")
		core := strings.HasPrefix(base, "_") || (len(base) > 1 && base[0] == '-' && base[1] >= '0' && base[1] <= '9')
		if base == name || !core {
			continue
		}
		arch := ""
		switch {
		case strings.Contains(name, "amd64"), strings.Contains(name, "x86_64"), strings.Contains(name, "x86-64"):
			arch = "amd64"
		case strings.Contains(name, "arm64"), strings.Contains(name, "aarch64"):
			arch = "arm64"
		default:
			continue
		}
		key := pkgKey(arch, format)
		if prev, dup := out[key]; dup {
			return nil, fmt.Errorf("%s: two %s packages: %s and %s", dir, key, filepath.Base(prev), name)
		}
		out[key] = filepath.Join(dir, name)
	}
	return out, nil
}
