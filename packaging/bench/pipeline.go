package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Pipeline is scenario 6: `go run mage.go` from a fresh clone of the committed tree,
// first with empty Go build and mage caches (cold), then again (warm).
type Pipeline struct {
	Commit   string           `json:"commit"`
	ColdS    float64          `json:"cold_seconds"`
	WarmS    float64          `json:"warm_seconds"`
	Packages map[string]int64 `json:"package_bytes"`
}

func pipeline(ctx context.Context, root, work string, out io.Writer) (*Pipeline, error) {
	dir := filepath.Join(work, "pipeline")
	src := filepath.Join(dir, "src")
	if b, err := exec.CommandContext(ctx, "git", "clone", "-q", "--shared", root, src).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("git clone: %v: %s", err, b)
	}
	p := &Pipeline{Packages: map[string]int64{}}
	if b, err := exec.Command("git", "-C", src, "rev-parse", "HEAD").Output(); err == nil {
		p.Commit = strings.TrimSpace(string(b))
	}
	env := append(os.Environ(), "GOCACHE="+filepath.Join(dir, "gocache"), "MAGEFILE_CACHE="+filepath.Join(dir, "magecache"))
	run := func() (float64, error) {
		t0 := time.Now()
		cmd := exec.CommandContext(ctx, "go", "run", "mage.go")
		cmd.Dir, cmd.Env = src, env
		b, err := cmd.CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("go run mage.go: %v: %s", err, tail(b))
		}
		return time.Since(t0).Seconds(), nil
	}
	var err error
	if p.ColdS, err = run(); err != nil {
		return p, err
	}
	fmt.Fprintf(out, "    cold %.1fs (load %s)\n", p.ColdS, loadavg())
	if p.WarmS, err = run(); err != nil {
		return p, err
	}
	fmt.Fprintf(out, "    warm %.1fs (load %s)\n", p.WarmS, loadavg())
	ents, _ := os.ReadDir(filepath.Join(src, "dist"))
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			for _, ext := range []string{".deb", ".rpm", ".apk"} {
				if strings.HasSuffix(e.Name(), ext) {
					p.Packages[e.Name()] = fi.Size()
				}
			}
		}
	}
	return p, nil
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
