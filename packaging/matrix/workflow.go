package matrix

import (
	"fmt"
	"sort"
	"strings"
)

// WorkflowPath is where the generated workflow lives, relative to the tree.
const WorkflowPath = ".github/workflows/matrix.yml"

// Workflow renders the GitHub Actions workflow for the rows: the every-change row with
// the same chroot runner as here (on every push and pull request), every row that runs
// here on a schedule, and each row this machine cannot run in its official container,
// driven from the runner host with docker so that the SMTP message really comes from
// outside the container.
func Workflow(rows []Row) (string, error) {
	every, ok := EveryChangeRow(rows)
	if !ok {
		return "", fmt.Errorf("no row says every_change")
	}
	var containers []Row
	for _, r := range rows {
		if !r.Runnable() {
			containers = append(containers, r)
		}
	}
	sort.Slice(containers, func(i, j int) bool { return containers[i].Name < containers[j].Name })
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# Generated from distros/*.yaml by packaging/matrix (go run mage.go matrixworkflow).")
	w("# Do not edit: change the rows and regenerate; a test fails when this file is stale.")
	w("name: matrix")
	w("on:")
	w("  push:")
	w("  pull_request:")
	w("  workflow_dispatch:")
	w("  schedule:")
	w("    - cron: '17 3 * * 1'")
	w("permissions:")
	w("  contents: read")
	w("jobs:")
	// The previous build is built from HEAD~1, and the version from git describe: both
	// need the history.
	checkout := func() {
		w("      - uses: actions/checkout@v4")
		w("        with:")
		w("          fetch-depth: 0")
		w("      - uses: actions/setup-go@v5")
		w("        with:")
		w("          go-version-file: go.mod")
	}
	tools := "sudo apt-get update && sudo apt-get install -y --no-install-recommends mmdebstrap arch-test binfmt-support qemu-user-static debian-archive-keyring"
	w("  every-change:")
	w("    name: %s (every change)", every.Name)
	w("    runs-on: ubuntu-24.04")
	w("    timeout-minutes: 45")
	w("    steps:")
	checkout()
	w("      - run: %s", tools)
	// sudo resets PATH (secure_path): hand setup-go's toolchain and caches over explicitly.
	asRoot := `sudo env "PATH=$PATH" "GOCACHE=$(go env GOCACHE)" "GOMODCACHE=$(go env GOMODCACHE)" go run mage.go matrix `
	w("      - run: %s%s", asRoot, every.Name)
	w("      - if: always()")
	w("        uses: actions/upload-artifact@v4")
	w("        with:")
	w("          name: matrix-%s", every.Name)
	w("          path: |")
	w("            distros/MATRIX.md")
	w("            distros/matrix.json")
	w("            build/matrix/logs/")
	w("  here-rows:")
	w("    name: every row that runs in a chroot")
	w("    if: github.event_name == 'schedule' || github.event_name == 'workflow_dispatch'")
	w("    runs-on: ubuntu-24.04")
	w("    timeout-minutes: 120")
	w("    steps:")
	checkout()
	w("      - run: %s", tools)
	w("      - run: %sall", asRoot)
	w("      - if: always()")
	w("        uses: actions/upload-artifact@v4")
	w("        with:")
	w("          name: matrix-here-rows")
	w("          path: |")
	w("            distros/MATRIX.md")
	w("            distros/matrix.json")
	w("            build/matrix/logs/")
	if len(containers) == 0 {
		return b.String(), nil
	}
	w("  kit:")
	w("    name: packages and test kit")
	w("    runs-on: ubuntu-24.04")
	w("    timeout-minutes: 30")
	w("    steps:")
	checkout()
	w("      - run: go run mage.go matrixkit build/kit")
	w("      - uses: actions/upload-artifact@v4")
	w("        with:")
	w("          name: kit")
	w("          path: build/kit/")
	w("  containers:")
	w("    name: ${{ matrix.row }} (container)")
	w("    needs: kit")
	w("    runs-on: ubuntu-24.04")
	w("    timeout-minutes: 30")
	w("    strategy:")
	w("      fail-fast: false")
	w("      matrix:")
	w("        include:")
	for _, r := range containers {
		w("          - row: %s", r.Name)
		w("            image: %s", r.Container)
		w("            format: %s", r.Format)
		w("            arch: %s", r.Arch)
	}
	w("    steps:")
	w("      - uses: actions/download-artifact@v4")
	w("        with:")
	w("          name: kit")
	w("          path: kit")
	w("      - name: run the kit")
	w("        env:")
	w("          IMAGE: ${{ matrix.image }}")
	w("          FORMAT: ${{ matrix.format }}")
	w("          ARCH: ${{ matrix.arch }}")
	w("        run: sh kit/container.sh \"$IMAGE\" \"$FORMAT\" \"$ARCH\"")
	return b.String(), nil
}
