package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/notqmail/notqmail/packaging/manifest"
	"github.com/notqmail/notqmail/packaging/manpage"
)

// Options say where a pipeline run reads and writes.
type Options struct {
	Root   string    // the source tree (module root)
	Build  string    // build directory; default Root/build
	Dist   string    // package directory; default Root/dist
	Arches []string  // default Arches
	Log    io.Writer // progress lines; default os.Stdout
	// Sign holds the signing keys; nil takes them from the environment (packages.go).
	Sign *manifest.SignConfig
	Site *Site // a site-patched build (site.go); nil for upstream
}

func (o Options) withDefaults() Options {
	if o.Build == "" {
		o.Build = filepath.Join(o.Root, "build")
	}
	if o.Dist == "" {
		o.Dist = filepath.Join(o.Root, "dist")
	}
	if len(o.Arches) == 0 {
		o.Arches = Arches
	}
	if o.Log == nil {
		o.Log = os.Stdout
	}
	return o
}

func (o Options) step(format string, args ...any) {
	fmt.Fprintf(o.Log, "==> "+format+"\n", args...)
}

// Artifact is one file written to dist/.
type Artifact struct {
	Name string
	Size int64
}

// Built is what Build produced.
type Built struct {
	Version    Version
	SourceDate time.Time
	Commands   []string // binaries under src/cmd
	Programs   []string // served by the multi-call binary
}

// Build cross-builds every command for every architecture into Build/<arch>/ and asks
// the multi-call binary which programs it serves.
func Build(ctx context.Context, o Options) (Built, error) {
	o = o.withDefaults()
	var b Built
	var err error
	if b.Version, err = DetectVersion(o.versionRoot()); err != nil {
		return b, err
	}
	if b.Version.Site, err = o.siteRevision(); err != nil {
		return b, err
	}
	if b.SourceDate, err = SourceDate(o.versionRoot()); err != nil {
		return b, err
	}
	o.step("version %s, file times %s", b.Version, b.SourceDate.Format(time.RFC3339))
	if b.Commands, err = Commands(o.Root); err != nil {
		return b, err
	}
	var hostBin string
	for _, arch := range o.Arches {
		dir := filepath.Join(o.Build, arch)
		o.step("building %s for linux/%s into %s", strings.Join(b.Commands, ", "), arch, rel(o.Root, dir))
		if err := BuildBinaries(ctx, o.Root, arch, b.Version.String(), dir, b.Commands, o.Log); err != nil {
			return b, err
		}
		if HostRunnable(arch) {
			hostBin = filepath.Join(dir, MultiCall)
		}
	}
	if hostBin == "" {
		// None of the release architectures runs here: build one that does, only to
		// ask it for its programs.
		dir := filepath.Join(o.Build, "host")
		o.step("building %s for this host (%s/%s) to list its programs", MultiCall, runtime.GOOS, runtime.GOARCH)
		if err := BuildBinaries(ctx, o.Root, runtime.GOARCH, b.Version.String(), dir, []string{MultiCall}, o.Log); err != nil {
			return b, err
		}
		hostBin = filepath.Join(dir, MultiCall)
	}
	if b.Programs, err = Programs(ctx, hostBin); err != nil {
		return b, err
	}
	o.step("%s serves %d programs: %s", MultiCall, len(b.Programs), strings.Join(b.Programs, " "))
	return b, nil
}

// Manifest builds the install manifest for a build, rendering the man pages into
// Build/man and writing the generated scripts into Build/gen.
func Manifest(o Options, b Built) (manifest.Manifest, manifest.Sources, error) {
	o = o.withDefaults()
	src := manifest.Sources{
		Man:      filepath.Join(o.Build, "man"),
		Etc:      filepath.Join(o.Root, "packaging", "etc"),
		Gen:      filepath.Join(o.Build, "gen"),
		Services: filepath.Join(o.Root, "packaging", "services"),
	}
	for _, d := range []string{src.Man, src.Gen} {
		if err := os.RemoveAll(d); err != nil {
			return manifest.Manifest{}, src, err
		}
	}
	pages, err := manpage.RenderAll(filepath.Join(o.Root, "src", "man"), src.Man)
	if err != nil {
		return manifest.Manifest{}, src, err
	}
	o.step("rendered %d man pages", len(pages))
	var standalone []string
	for _, c := range b.Commands {
		if c != MultiCall {
			standalone = append(standalone, c)
		}
	}
	m, err := manifest.New(manifest.Inputs{Programs: b.Programs, Standalone: standalone, Pages: pages})
	if err != nil {
		return m, src, err
	}
	if len(m.Missing) > 0 {
		o.step("WARNING: no man page for %s (add src/man/NAME.SECTION.md; the tests fail on this)", strings.Join(m.Missing, ", "))
	}
	changes, err := os.ReadFile(filepath.Join(src.Etc, "changelog"))
	if err != nil {
		return m, src, err
	}
	if err := m.WriteGenerated(src.Gen, packageMeta(b), changes); err != nil {
		return m, src, err
	}
	if err := o.addSiteFiles(&m, src, b); err != nil {
		return m, src, err
	}
	return m, src, nil
}

// Package is the default pipeline: build, then write a deb, an rpm and an apk for
// every architecture and SHA256SUMS into Dist, and return what was written.
func Package(ctx context.Context, o Options) ([]Artifact, error) {
	o = o.withDefaults()
	b, err := Build(ctx, o)
	if err != nil {
		return nil, err
	}
	m, src, err := Manifest(o, b)
	if err != nil {
		return nil, err
	}
	return writePackages(o, b, m, src)
}

// SumsFile is the checksum list, in sha256sum's format.
const SumsFile = "SHA256SUMS"

// Checksums returns SHA256SUMS for the artifacts in dir, sorted by name, in the format
// `sha256sum -c` reads.
func Checksums(dir string, arts []Artifact) ([]byte, error) {
	names := make([]string, 0, len(arts))
	for _, a := range arts {
		names = append(names, a.Name)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), n)
	}
	return b.Bytes(), nil
}

// Summary writes the table of what was written: name and size.
func Summary(w io.Writer, dist string, arts []Artifact) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "\nWritten to %s:\n", dist)
	var total int64
	for _, a := range arts {
		fmt.Fprintf(tw, "  %s\t%s\t\n", a.Name, humanSize(a.Size))
		total += a.Size
	}
	tw.Flush()
	fmt.Fprintf(w, "%d files, %s\n", len(arts), humanSize(total))
}

// Clean removes the build and dist directories.
func Clean(o Options) error {
	o = o.withDefaults()
	for _, d := range []string{o.Build, o.Dist} {
		o.step("removing %s", rel(o.Root, d))
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	return nil
}

// removeOldArtifacts removes packages and sums from an earlier run, so dist/ holds
// exactly one build and SHA256SUMS covers all of it. Anything else is left alone.
func removeOldArtifacts(dist string) error {
	ents, err := os.ReadDir(dist)
	if err != nil {
		return err
	}
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && (n == SumsFile || strings.HasSuffix(n, ".deb") || strings.HasSuffix(n, ".rpm") || strings.HasSuffix(n, ".apk")) {
			if err := os.Remove(filepath.Join(dist, n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteAtomic writes a file (mode 0644) through a temporary file in its directory, so an
// interrupted run never leaves it truncated under its real name.
func WriteAtomic(p string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-"+filepath.Base(p)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func rel(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}
