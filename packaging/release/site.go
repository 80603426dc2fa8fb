package release

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/notqmail/notqmail/packaging/manifest"
)

// Site describes a build from a copy of the tree with a site's patches applied
// (packaging/patches). Options.Root is then the patched copy; the version and the
// file times still come from the unpatched tree, and the version gains a site suffix.
type Site struct {
	Source    string // the unpatched tree: version and SOURCE_DATE come from it
	Revision  int    // N in the site suffix; at least 1
	PatchList []byte // the list of applied patches, shipped as SitePatchList
}

// SitePatchList is where a site build's packages list the patches applied. It sits
// beside the binaries rather than under /usr/share/doc, which minimal and container
// installs often exclude from unpacking.
const SitePatchList = "/usr/lib/notqmail/site-patches"

// sitePatchListSource is its name under Sources.Gen.
const sitePatchListSource = "site-patches"

// versionRoot is the tree the version and file times are read from.
func (o Options) versionRoot() string {
	if o.Site != nil && o.Site.Source != "" {
		return o.Site.Source
	}
	return o.Root
}

// siteRevision is the site suffix's N, 0 for an upstream build.
func (o Options) siteRevision() (int, error) {
	if o.Site == nil {
		return 0, nil
	}
	if o.Site.Revision < 1 {
		return 0, fmt.Errorf("site revision %d: want 1 or more", o.Site.Revision)
	}
	return o.Site.Revision, nil
}

// siteMeta appends the site suffix to the build metadata parts. A build of an exact
// release gets "0." first, so that "1.2.3+0.site1" sorts below the next upstream
// snapshot "1.2.3+1.gabc1234" in dpkg and rpm alike, as it does below "1.2.4".
func (v Version) siteMeta(parts []string) []string {
	if v.Site == 0 {
		return parts
	}
	if v.Hash == "" {
		parts = append([]string{"0"}, parts...)
	}
	return append(parts, fmt.Sprintf("site%d", v.Site))
}

// siteAPK appends the site suffix in Alpine's grammar, where "_p" is the suffix that
// sorts after its version: "_pN" after a snapshot's own suffix, and "_p0_pN" on an
// exact release or pre-release so that it stays below the next snapshot's "_p1".
func (v Version) siteAPK(s string) string {
	if v.Site == 0 {
		return s
	}
	if v.Hash == "" {
		s += "_p0"
	}
	return s + fmt.Sprintf("_p%d", v.Site)
}

// addSiteFiles writes the patch list into Sources.Gen and adds it to the manifest.
func (o Options) addSiteFiles(m *manifest.Manifest, src manifest.Sources, b Built) error {
	if o.Site == nil {
		return nil
	}
	p := filepath.Join(src.Gen, sitePatchListSource)
	if err := os.WriteFile(p, o.Site.PatchList, 0o644); err != nil {
		return err
	}
	if err := os.Chtimes(p, b.SourceDate, b.SourceDate); err != nil {
		return err
	}
	if _, dup := m.Lookup(SitePatchList); dup {
		return fmt.Errorf("%s: already in the manifest", SitePatchList)
	}
	m.Entries = append(m.Entries, manifest.Entry{
		Path: SitePatchList, Kind: manifest.File, Mode: 0o644, Owner: "root", Group: "root",
		Origin: manifest.Generated, Source: sitePatchListSource,
	})
	sort.Slice(m.Entries, func(i, j int) bool { return m.Entries[i].Path < m.Entries[j].Path })
	return nil
}

// PublishStaged moves a complete build's artifacts from the staging directory into
// dist, after removing the previous build's artifacts there (anything else in dist is
// left alone). It runs only once the whole new build exists, so a failed build, plain
// or site, leaves dist as it was.
func PublishStaged(staging, dist string, arts []Artifact) error {
	if err := os.MkdirAll(dist, 0o755); err != nil {
		return err
	}
	if err := removeOldArtifacts(dist); err != nil {
		return err
	}
	for _, a := range arts {
		if err := os.Rename(filepath.Join(staging, a.Name), filepath.Join(dist, a.Name)); err != nil {
			return err
		}
	}
	return nil
}
