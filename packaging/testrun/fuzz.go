package testrun

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// FuzzTimeEnv sets how long each fuzz target runs in the test target: a count of
// executions such as "20000x", or a Go duration such as "30s"; "0" leaves fuzzing out. The corpora under testdata/fuzz always run as
// ordinary tests; this step searches beyond them for a short while on every run.
const FuzzTimeEnv = "NOTQMAIL_FUZZTIME"

// defaultFuzzTime is a count, not a duration: Go 1.26's fuzz coordinator can report a
// duration's expiry as a failure ("context deadline exceeded", go.dev/issue/75804)
// when a loaded machine starves its workers, and a count has no deadline to race. 2000
// executions keep the slowest targets (those that run programs) to seconds.
const defaultFuzzTime = "2000x"

// FuzzTarget is one fuzz function and the package directory holding it.
type FuzzTarget struct {
	Dir  string // relative to the module root, e.g. "src/smtpd"
	Name string // e.g. "FuzzSession"
}

var fuzzFunc = regexp.MustCompile(`^func (Fuzz\w+)\(\w+ \*testing\.F\)`)

// FuzzTargets finds every fuzz target under the module root's src/ and packaging/,
// sorted by package and name.
func FuzzTargets(root string) ([]FuzzTarget, error) {
	var out []FuzzTarget
	for _, top := range []string{"src", "packaging"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(p, "_test.go") {
				return nil
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			rel, err := filepath.Rel(root, filepath.Dir(p))
			if err != nil {
				return err
			}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if m := fuzzFunc.FindStringSubmatch(sc.Text()); m != nil {
					out = append(out, FuzzTarget{Dir: filepath.ToSlash(rel), Name: m[1]})
				}
			}
			return sc.Err()
		})
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Dir != out[j].Dir {
			return out[i].Dir < out[j].Dir
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// fuzzTime returns the per-target fuzzing time, or "" when fuzzing is switched off.
func fuzzTime() string {
	v := strings.TrimSpace(os.Getenv(FuzzTimeEnv))
	switch v {
	case "":
		return defaultFuzzTime
	case "0", "0s", "off":
		return ""
	}
	return v
}

// fuzzArgs is the go command line that fuzzes one target alone.
func fuzzArgs(t FuzzTarget, d string) []string {
	return []string{"test", "-run", "^$", "-fuzz", "^" + t.Name + "$", "-fuzztime", d, "./" + t.Dir}
}
