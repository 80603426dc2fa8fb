package manifest

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestChangesTakesTheNewestSection(t *testing.T) {
	got, err := Changes([]byte("# title\n\n## 2.0\n\n- new thing\n- other thing\n\n## 1.0\n\n- old thing\n"))
	if err != nil || strings.Join(got, "|") != "new thing|other thing" {
		t.Errorf("Changes = %q, %v", got, err)
	}
	for name, in := range map[string]string{
		"empty":        "# title\n",
		"no items":     "## 1.0\ntext\n",
		"continuation": "## 1.0\n- a\n  b\n",
		"too long":     "## 1.0\n- " + strings.Repeat("x", 77) + "\n",
	} {
		if _, err := Changes([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestChangelogYAML(t *testing.T) {
	meta := Meta{Maintainer: "M <m@example.org>", MTime: time.Unix(1700000000, 0), Version: Version{Base: "1.2.3", Pre: "rc1"}}
	y, err := ChangelogYAML(meta, []byte("## x\n- a change\n"))
	if err != nil {
		t.Fatal(err)
	}
	var back []map[string]any
	if err := yaml.Unmarshal(y, &back); err != nil || len(back) != 1 {
		t.Fatalf("%v\n%s", err, y)
	}
	if back[0]["semver"] != "1.2.3~rc1-1" || back[0]["packager"] != "M <m@example.org>" || !strings.Contains(string(y), "note: a change") {
		t.Errorf("changelog YAML:\n%s", y)
	}
}
