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
	"sort"
	"strings"

	"github.com/notqmail/notqmail/packaging/release"
)

// PreviousEnv names the previous build to upgrade from: a git revision of the tree or
// a directory holding its packages. By default it is the newest older build an
// earlier run on this machine kept, else HEAD~1.
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
	if err := remember(work, p); err != nil {
		fmt.Fprintf(log, "matrix: not keeping this build for later upgrades: %v\n", err)
	}
	if previous != "" {
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
	// By default the previous build is the newest older one this machine tested,
	// else the commit before the one under test.
	if prev, ver := recalled(work, p.Version, arches); prev != nil {
		p.Previous, p.PreviousVersion = prev, ver
		fmt.Fprintf(log, "matrix: upgrading from %s, kept from an earlier run\n", ver)
		return p, nil
	}
	if headErr != nil {
		p.PreviousWhy = "no earlier build kept, and no git history: " + headErr.Error()
		return p, nil
	}
	// One commit only: each attempt is a full build, and CI pays for it.
	for n := 1; n <= 1; n++ {
		rev := fmt.Sprintf("%s~%d", head, n)
		prev, ver, err := buildRevision(ctx, tree, work, rev, log)
		if err == nil && len(prev) > 0 {
			p.Previous, p.PreviousVersion = prev, ver
			return p, nil
		}
		p.PreviousWhy = fmt.Sprintf("no earlier build kept here, and HEAD~%d does not build: %v", n, err)
		fmt.Fprintf(log, "matrix: %s\n", p.PreviousWhy)
	}
	return p, nil
}

// historyKeep is how many tested builds are kept to upgrade from.
const historyKeep = 3

// remember keeps this build's packages in work/history/<version>, for later runs to
// upgrade from.
func remember(work string, p Packages) error {
	dir := filepath.Join(work, "history", strings.ReplaceAll(p.Version, "/", "_"))
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range p.Current {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			return err
		}
	}
	os.WriteFile(filepath.Join(dir, "VERSION"), []byte(p.Version+"\n"), 0o644)
	ents, _ := os.ReadDir(filepath.Dir(dir))
	sort.Slice(ents, func(i, j int) bool { return modTime(filepath.Dir(dir), ents[i]) > modTime(filepath.Dir(dir), ents[j]) })
	for i, e := range ents {
		if i >= historyKeep {
			os.RemoveAll(filepath.Join(filepath.Dir(dir), e.Name()))
		}
	}
	return nil
}

func modTime(dir string, e os.DirEntry) int64 {
	st, err := os.Stat(filepath.Join(dir, e.Name()))
	if err != nil {
		return 0
	}
	return st.ModTime().UnixNano()
}

// recalled returns the newest kept build older than version (as dpkg orders them)
// that has packages for every one of arches, else the newest that has them for at
// least one; rows of an architecture it lacks say so in their upgrade cells. (A
// run of one foreign row keeps a build of that architecture alone, which must not
// hide an older, complete one from the next full run.)
func recalled(work, version string, arches []string) (map[string]string, string) {
	hist := filepath.Join(work, "history")
	ents, _ := os.ReadDir(hist)
	sort.Slice(ents, func(i, j int) bool { return modTime(hist, ents[i]) > modTime(hist, ents[j]) })
	var partial map[string]string
	var partialVersion string
	for _, e := range ents {
		dir := filepath.Join(hist, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "VERSION"))
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		if exec.Command("dpkg", "--compare-versions", v, "lt", version).Run() != nil {
			continue
		}
		pk, err := FindPackages(dir)
		if err != nil {
			continue
		}
		have := 0
		for _, a := range arches {
			if pk[pkgKey(a, "deb")] != "" {
				have++
			}
		}
		if have == len(arches) && have > 0 {
			return pk, v
		}
		if have > 0 && partial == nil {
			partial, partialVersion = pk, v
		}
	}
	return partial, partialVersion
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

// lastLine returns mage's "Error:" line from the output, else its last line.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "Error: ") {
			return lines[i]
		}
	}
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
