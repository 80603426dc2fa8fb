package matrix

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestWorkflowUpToDate(t *testing.T) {
	rows, err := LoadRows(filepath.Join(tree, "distros"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := Workflow(rows)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(tree, WorkflowPath))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s is stale: run go run mage.go matrixworkflow", WorkflowPath)
	}
	var wf struct {
		Jobs map[string]struct {
			Strategy struct {
				Matrix struct {
					Include []map[string]string `yaml:"include"`
				} `yaml:"matrix"`
			} `yaml:"strategy"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(got, &wf); err != nil {
		t.Fatalf("not YAML: %v", err)
	}
	images := map[string]bool{}
	for _, inc := range wf.Jobs["containers"].Strategy.Matrix.Include {
		images[inc["image"]] = true
	}
	for _, r := range rows {
		if !r.Runnable() && !images[r.Container] {
			t.Errorf("row %s (%s) is not in the containers job", r.Name, r.Container)
		}
	}
	if !strings.Contains(string(got), "go run mage.go matrix debian-12-amd64") {
		t.Error("the every-change job does not run debian-12-amd64")
	}
}

// actionlint checks the workflow's syntax, expressions and the shell in its run steps.
// It is fetched through the Go proxy and built, which takes a while: set
// NOTQMAIL_ACTIONLINT=1 to run it (go run mage.go test does not).
func TestWorkflowActionlint(t *testing.T) {
	if os.Getenv("NOTQMAIL_ACTIONLINT") == "" {
		t.Skip("set NOTQMAIL_ACTIONLINT=1 to run actionlint (fetched with go run ...@v1.7.7, go.mod untouched)")
	}
	cmd := exec.Command(goTool(), "run", "github.com/rhysd/actionlint/cmd/actionlint@v1.7.7", "-no-color", WorkflowPath)
	cmd.Dir = tree
	// Outside the module's requirements: go run pkg@version ignores go.mod.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("actionlint: %v\n%s", err, out)
	}
}
