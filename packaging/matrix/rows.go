// Package matrix is the tested-distribution matrix: one YAML file per row under
// distros/, a runner that proves the packages on every row this machine can run
// (Debian roots built with mmdebstrap, entered with chroot), and the rendering of what
// actually ran into distros/matrix.json and distros/MATRIX.md. The rows this machine
// cannot run go into a generated GitHub Actions workflow that runs the same kit in
// official containers.
package matrix

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Row is one distros/<name>.yaml file.
type Row struct {
	Name         string `yaml:"name" json:"name"`                 // the file name without .yaml
	Distribution string `yaml:"distribution" json:"distribution"` // Debian, Fedora, ...
	Release      string `yaml:"release" json:"release"`           // "12 (bookworm)"
	Arch         string `yaml:"arch" json:"arch"`                 // Debian/Go architecture name: amd64, arm64
	Format       string `yaml:"format" json:"format"`             // deb, rpm, apk
	Init         string `yaml:"init" json:"init"`                 // the distribution's init system
	// Here says how the root is made on this machine; empty when it cannot be.
	Here *HereSpec `yaml:"here,omitempty" json:"here,omitempty"`
	// NotHere says why the row cannot run on this machine (required when Here is absent).
	NotHere string `yaml:"not_here,omitempty" json:"not_here,omitempty"`
	// Container is the official image CI runs the kit in; empty for rows CI runs with
	// the chroot runner.
	Container string `yaml:"container,omitempty" json:"container,omitempty"`
	// EveryChange marks the row CI (and `mage test`) runs on every change.
	EveryChange bool   `yaml:"every_change,omitempty" json:"every_change,omitempty"`
	Notes       string `yaml:"notes,omitempty" json:"notes,omitempty"`
}

// HereSpec is how the runner builds the row's root on this machine.
type HereSpec struct {
	Builder string   `yaml:"builder" json:"builder"` // mmdebstrap
	Suite   string   `yaml:"suite" json:"suite"`     // Debian suite
	Include []string `yaml:"include,omitempty" json:"include,omitempty"`
	// Prepare are shell commands run in each fresh root before the kit, to give it
	// what the distribution the row stands for would have (say why in notes).
	Prepare []string `yaml:"prepare,omitempty" json:"prepare,omitempty"`
	// Skip lists kit steps that cannot be exercised in this root, each with why.
	Skip map[string]string `yaml:"skip,omitempty" json:"skip,omitempty"`
}

// Steps are the kit's steps in order, each a column of the matrix.
var Steps = []string{"install", "users", "start", "smtp", "sendmail", "extras", "upgrade", "remove", "purge", "overqmail"}

// StepTitles are the column headings.
var StepTitles = map[string]string{
	"install":  "install",
	"users":    "users, modes, queue",
	"start":    "starts without systemd",
	"smtp":     "SMTP in → Maildir",
	"sendmail": "sendmail → sink",
	// notqmail-pop3 and notqmail-qmtp, each installed alone on top of notqmail.
	"extras":  "split packages",
	"upgrade": "upgrade keeps config + queue",
	"remove":  "remove",
	"purge":   "purge",
	// Installing over a qmail installation made the way qmail's INSTALL makes it.
	"overqmail": "over a qmail /var/qmail",
}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*$`)
	formats   = map[string]bool{"deb": true, "rpm": true, "apk": true}
	arches    = map[string]bool{"amd64": true, "arm64": true}
	builders  = map[string]bool{"mmdebstrap": true}
	imageRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9./_-]*(:[A-Za-z0-9._-]+)?$`)
	errNoRows = errors.New("no rows")
)

// Validate checks a row's fields; name is the file's base name.
func (r *Row) Validate(file string) error {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if !nameRE.MatchString(r.Name) {
		bad("name %q: want lower-case letters, digits, dots and dashes", r.Name)
	}
	if want := strings.TrimSuffix(filepath.Base(file), ".yaml"); r.Name != want {
		bad("name %q does not match the file name %q", r.Name, want)
	}
	if r.Distribution == "" || r.Release == "" || r.Init == "" {
		bad("distribution, release and init are required")
	}
	if !arches[r.Arch] {
		bad("arch %q: want amd64 or arm64", r.Arch)
	}
	if !formats[r.Format] {
		bad("format %q: want deb, rpm or apk", r.Format)
	}
	switch {
	case r.Here == nil && r.NotHere == "":
		bad("a row needs either here (how the root is built on this machine) or not_here (why it cannot be)")
	case r.Here != nil && r.NotHere != "":
		bad("here and not_here both given")
	}
	if h := r.Here; h != nil {
		if !builders[h.Builder] {
			bad("here.builder %q: want mmdebstrap", h.Builder)
		}
		if h.Suite == "" {
			bad("here.suite is required")
		}
		for s, why := range h.Skip {
			if !contains(Steps, s) {
				bad("here.skip: unknown step %q (steps: %s)", s, strings.Join(Steps, ", "))
			}
			if strings.TrimSpace(why) == "" {
				bad("here.skip.%s: say why", s)
			}
		}
	}
	if r.Container != "" && !imageRE.MatchString(r.Container) {
		bad("container %q is not an image reference", r.Container)
	}
	if r.Here == nil && r.Container == "" {
		bad("a row that cannot run here needs a container for CI")
	}
	if r.EveryChange && r.Here == nil {
		bad("every_change needs a row that runs here")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s: %s", file, strings.Join(errs, "; "))
	}
	return nil
}

// Runnable says whether the row runs on this machine.
func (r Row) Runnable() bool { return r.Here != nil }

// LoadRows reads and validates every distros/*.yaml in dir, sorted by name.
func LoadRows(dir string) ([]Row, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: %w", dir, errNoRows)
	}
	var rows []Row
	var errs []error
	every := 0
	for _, f := range files {
		r, err := LoadRow(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if r.EveryChange {
			every++
		}
		rows = append(rows, r)
	}
	if every > 1 {
		errs = append(errs, fmt.Errorf("%s: %d rows say every_change; CI runs one", dir, every))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	return rows, nil
}

// LoadRow reads one row file, refusing unknown fields so that a typo is not ignored.
func LoadRow(file string) (Row, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return Row{}, err
	}
	if len(b) > 64<<10 {
		return Row{}, fmt.Errorf("%s: %d bytes is too big for a row", file, len(b))
	}
	var r Row
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return Row{}, fmt.Errorf("%s: %w", file, err)
	}
	if err := r.Validate(file); err != nil {
		return Row{}, err
	}
	return r, nil
}

// Select picks the rows to run: all runnable rows for "" or "all", else the named
// ones, separated by commas (each must exist and be runnable).
func Select(rows []Row, name string) ([]Row, error) {
	if strings.Contains(name, ",") {
		var out []Row
		for _, n := range strings.Split(name, ",") {
			one, err := Select(rows, strings.TrimSpace(n))
			if err != nil {
				return nil, err
			}
			if len(one) == 1 && !containsRow(out, one[0].Name) {
				out = append(out, one[0])
			}
		}
		return out, nil
	}
	if name == "" || name == "all" {
		var out []Row
		for _, r := range rows {
			if r.Runnable() {
				out = append(out, r)
			}
		}
		return out, nil
	}
	for _, r := range rows {
		if r.Name == name {
			if !r.Runnable() {
				return nil, fmt.Errorf("row %s cannot run on this machine: %s", name, r.NotHere)
			}
			return []Row{r}, nil
		}
	}
	var names []string
	for _, r := range rows {
		names = append(names, r.Name)
	}
	return nil, fmt.Errorf("no row %q; rows: %s", name, strings.Join(names, ", "))
}

// EveryChangeRow returns the row CI runs on every change.
func EveryChangeRow(rows []Row) (Row, bool) {
	for _, r := range rows {
		if r.EveryChange {
			return r, true
		}
	}
	return Row{}, false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsRow(rows []Row, name string) bool {
	for _, r := range rows {
		if r.Name == name {
			return true
		}
	}
	return false
}
