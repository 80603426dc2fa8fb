package matrix

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The kit's scripts parse as POSIX sh (dash, Debian's /bin/sh) and under bash.
func TestKitScriptsParse(t *testing.T) {
	for _, f := range []string{"kit.sh", "container.sh"} {
		p := filepath.Join(tree, "packaging", "kit", f)
		for _, sh := range [][]string{{"dash", "-n"}, {"bash", "--posix", "-n"}} {
			if _, err := exec.LookPath(sh[0]); err != nil {
				continue
			}
			if out, err := exec.Command(sh[0], append(sh[1:], p)...).CombinedOutput(); err != nil {
				t.Errorf("%s %s: %v\n%s", sh[0], f, err, out)
			}
		}
	}
}

// Every column of the matrix is a step the kit implements.
func TestKitHasEveryStep(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(tree, "packaging", "kit", "kit.sh"))
	if err != nil {
		t.Fatal(err)
	}
	kit := string(b)
	for _, s := range Steps {
		step := s
		if s == "smtp" {
			step = "maildir" // the runner sends from outside, the kit checks the Maildir
		}
		if !strings.Contains(kit, "\t"+step+") step_") {
			t.Errorf("kit.sh has no step %q for column %q", step, s)
		}
		if StepTitles[s] == "" {
			t.Errorf("column %q has no title", s)
		}
	}
}
