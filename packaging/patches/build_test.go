package patches

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/packaging/release"
)

// siteTree is a small Go module with a test, standing in for the project: the
// pipeline logic is the same, and go test on it takes a second, not minutes.
func siteTree(t *testing.T, calc, series string, patches map[string]string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"go.mod":            "module example.com/site\n\ngo 1.26\n",
		"calc/calc.go":      calc,
		"calc/calc_test.go": "package calc\n\nimport \"testing\"\n\nfunc TestAnswer(t *testing.T) {\n\tif Answer() != 42 {\n\t\tt.Fatalf(\"Answer() = %d\", Answer())\n\t}\n}\n",
		"notes.txt":         lines(30, map[int]string{15: "fifteen"}), // upstream took "fifteen"
		"dist/old.deb":      "previous build\n",
		"patches/series":    series,
	}
	for name, body := range patches {
		files["patches/"+name] = body
	}
	writeFiles(t, root, files)
	return root
}

const calcGo = "package calc\n\n// Answer is the answer.\nfunc Answer() int {\n\treturn 42\n}\n"

type fakeBuild struct {
	called bool
	opts   release.Options
	tree   map[string]string // files of the tree it was given
}

// builder stands in for release.Package: it records what it was given and writes one
// artifact into the staging directory, as the real one writes packages.
func (f *fakeBuild) builder(t *testing.T) func(context.Context, release.Options) ([]release.Artifact, error) {
	return func(_ context.Context, o release.Options) ([]release.Artifact, error) {
		f.called, f.opts, f.tree = true, o, map[string]string{}
		for _, n := range []string{"calc/calc.go", "notes.txt"} {
			b, err := os.ReadFile(filepath.Join(o.Root, n))
			if err != nil {
				t.Fatal(err)
			}
			f.tree[n] = string(b)
		}
		if o.Dist == "" {
			o.Dist = filepath.Join(o.Root, "dist") // release.Package's default
		}
		if err := os.MkdirAll(o.Dist, 0o755); err != nil {
			return nil, err
		}
		body := []byte("upstream build\n")
		if o.Site != nil {
			body = o.Site.PatchList
		}
		if err := os.WriteFile(filepath.Join(o.Dist, "new.deb"), body, 0o644); err != nil {
			return nil, err
		}
		return []release.Artifact{{Name: "new.deb", Size: int64(len(body))}}, nil
	}
}

func TestSiteBuildOutcomes(t *testing.T) {
	needTools(t)
	answer41 := strings.Replace(calcGo, "return 42", "return 41", 1)
	comment := strings.Replace(calcGo, "// Answer is the answer.", "// Answer is the answer (site patch).", 1)
	notesBase := lines(30, nil)
	cases := []struct {
		name      string
		calc      string // calc.go in the source; default calcGo
		series    string
		patches   map[string]string
		built     bool
		class     Class
		errWants  []string
		calcAfter string
	}{
		{name: "empty series", series: "# nothing\n", built: true, calcAfter: calcGo},
		{
			name: "clean", series: "site-comment.patch\n", built: true, class: Clean, calcAfter: comment,
			patches: map[string]string{"site-comment.patch": "Mark the site.\n" + unifiedDiff(t, "calc/calc.go", calcGo, comment)},
		},
		{
			// The source gained two lines above what the patch was made against.
			name: "offset", calc: "// Site licence.\n\n" + calcGo, series: "site-comment.patch\n", built: true, class: Offset,
			calcAfter: "// Site licence.\n\n" + comment,
			patches:   map[string]string{"site-comment.patch": unifiedDiff(t, "calc/calc.go", calcGo, comment)},
		},
		{
			name: "already upstream", series: "fifteen.patch\n", built: true, class: Contained, calcAfter: calcGo,
			patches: map[string]string{"fifteen.patch": unifiedDiff(t, "notes.txt", notesBase, lines(30, map[int]string{15: "fifteen"}))},
		},
		{
			name: "conflict", series: "fifteen.patch\n", class: Conflict,
			patches:  map[string]string{"fifteen.patch": unifiedDiff(t, "notes.txt", notesBase, lines(30, map[int]string{15: "XV"}))},
			errWants: []string{"dist/ untouched", "fifteen.patch"},
		},
		{
			name: "breaks a test", series: "answer.patch\n", class: Clean,
			patches:  map[string]string{"answer.patch": unifiedDiff(t, "calc/calc.go", calcGo, answer41)},
			errWants: []string{"tests fail", "example.com/site/calc", "TestAnswer", "patches touching those packages: answer.patch"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.calc == "" {
				c.calc = calcGo
			}
			root := siteTree(t, c.calc, c.series, c.patches)
			var log bytes.Buffer
			var fb fakeBuild
			arts, err := Package(context.Background(), Options{
				Release: release.Options{Root: root, Log: &log},
				Builder: fb.builder(t),
				Work:    t.TempDir(),
			})
			if c.built != (err == nil) {
				t.Fatalf("built=%v, err=%v\n%s", err == nil, err, log.String())
			}
			for _, w := range c.errWants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if c.class != "" && !strings.Contains(log.String(), " "+string(c.class)+" ") {
				t.Errorf("log does not classify the patch as %s:\n%s", c.class, log.String())
			}
			if !c.built {
				if fb.called {
					t.Fatal("packages were built after a failure")
				}
				if b, err := os.ReadFile(filepath.Join(root, "dist", "old.deb")); err != nil || string(b) != "previous build\n" {
					t.Fatalf("previous dist/ not left as it was: %q %v", b, err)
				}
				return
			}
			if len(arts) != 1 || !fb.called {
				t.Fatalf("artifacts %v, builder called %v", arts, fb.called)
			}
			if fb.tree["calc/calc.go"] != c.calcAfter {
				t.Errorf("builder saw calc.go:\n%s", fb.tree["calc/calc.go"])
			}
			if _, err := os.Stat(filepath.Join(root, "dist", "new.deb")); err != nil {
				t.Fatalf("new package not published: %v", err)
			}
			if len(c.patches) == 0 {
				if fb.opts.Root != root || fb.opts.Site != nil {
					t.Fatalf("empty series: built from %s with site %+v, want the tree itself", fb.opts.Root, fb.opts.Site)
				}
				return
			}
			if _, err := os.Stat(filepath.Join(root, "dist", "old.deb")); !os.IsNotExist(err) {
				t.Errorf("previous packages not replaced: %v", err)
			}
			if fb.opts.Root == root || fb.opts.Site == nil || fb.opts.Site.Source != root || fb.opts.Site.Revision != 1 {
				t.Fatalf("site build from %s with %+v", fb.opts.Root, fb.opts.Site)
			}
			// The source tree itself is never patched.
			if b, _ := os.ReadFile(filepath.Join(root, "calc", "calc.go")); string(b) != c.calc {
				t.Fatal("the source tree was patched")
			}
			for name, body := range c.patches {
				sum := sha256.Sum256([]byte(body))
				want := hex.EncodeToString(sum[:]) + " " + string(c.class) + " " + name
				if !strings.Contains(string(fb.opts.Site.PatchList), want) {
					t.Errorf("patch list lacks %q:\n%s", want, fb.opts.Site.PatchList)
				}
			}
		})
	}
}

// A packaging failure after the tests passed still leaves dist/ as it was: the
// packages are staged, and the half-written ones never reach dist/.
func TestSiteBuildPackagingFailureKeepsDist(t *testing.T) {
	needTools(t)
	comment := strings.Replace(calcGo, "// Answer is the answer.", "// Answer is the answer (site).", 1)
	root := siteTree(t, calcGo, "c.patch\n", map[string]string{"c.patch": unifiedDiff(t, "calc/calc.go", calcGo, comment)})
	var log bytes.Buffer
	_, err := Package(context.Background(), Options{
		Release: release.Options{Root: root, Log: &log},
		Work:    t.TempDir(),
		Builder: func(_ context.Context, o release.Options) ([]release.Artifact, error) {
			if err := os.WriteFile(filepath.Join(o.Dist, "half.deb"), []byte("trunc"), 0o644); err != nil {
				return nil, err
			}
			return nil, errors.New("nfpm: disk full")
		},
	})
	if err == nil || !strings.Contains(err.Error(), "dist/ untouched") || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(root, "dist"))
	if len(ents) != 1 || ents[0].Name() != "old.deb" {
		t.Fatalf("dist/ now holds %v", ents)
	}
}
