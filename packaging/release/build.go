package release

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// Arches are the architectures every release is built for (GOARCH names).
var Arches = []string{"amd64", "arm64"}

// VersionVar is the variable the version is stamped into.
const VersionVar = "github.com/notqmail/notqmail/src/version.Version"

// MultiCall is the command that serves most programs.
const MultiCall = "notqmail"

// Commands lists the programs under src/cmd: every directory holding Go source. Each
// becomes one binary; a new one (qmail-queue, when it arrives) is picked up by this.
func Commands(root string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(root, "src", "cmd"))
	if err != nil {
		return nil, err
	}
	var cmds []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		srcs, _ := filepath.Glob(filepath.Join(root, "src", "cmd", e.Name(), "*.go"))
		for _, s := range srcs {
			if !strings.HasSuffix(s, "_test.go") {
				cmds = append(cmds, e.Name())
				break
			}
		}
	}
	sort.Strings(cmds)
	if len(cmds) == 0 || !contains(cmds, MultiCall) {
		return nil, fmt.Errorf("%s: no src/cmd/%s", root, MultiCall)
	}
	return cmds, nil
}

// BuildBinaries builds the commands for linux/arch into outDir/<command>: static
// (CGO off), without build paths (-trimpath) or VCS stamps, and with the version
// stamped in, so the same tree always gives the same bytes. Compiler output goes to log.
func BuildBinaries(ctx context.Context, root, arch, version, outDir string, cmds []string, log io.Writer) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	args := []string{"build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -buildid= -X " + VersionVar + "=" + version,
		"-o", outDir + string(os.PathSeparator)}
	for _, c := range cmds {
		args = append(args, "./src/cmd/"+c)
	}
	cmd := exec.CommandContext(ctx, goTool(), args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build for linux/%s: %w", arch, err)
	}
	for _, c := range cmds {
		if _, err := os.Stat(filepath.Join(outDir, c)); err != nil {
			return fmt.Errorf("go build for linux/%s left no %s: %w", arch, c, err)
		}
	}
	return nil
}

// goTool is the go command that runs this code, so `go run mage.go` with a given
// toolchain builds with that toolchain.
func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

// HostRunnable reports whether binaries built for linux/arch run on this machine.
func HostRunnable(arch string) bool {
	return runtime.GOOS == "linux" && runtime.GOARCH == arch
}

// maxList bounds what we read from `notqmail --list`.
const maxList = 1 << 20

// Programs runs a notqmail binary built for this host with --list and returns the
// program names it serves. The environment is cleared of QMAILHOME so that a sandbox
// in the caller's environment cannot change the answer.
func Programs(ctx context.Context, bin string) ([]string, error) {
	cmd := exec.CommandContext(ctx, bin, "--list")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "QMAILHOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out limitedBuffer
	var errb bytes.Buffer
	out.max = maxList
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s --list: %v: %s", bin, err, strings.TrimSpace(errb.String()))
	}
	if out.over {
		return nil, fmt.Errorf("%s --list: more than %d bytes of output", bin, maxList)
	}
	var progs []string
	for _, l := range strings.Split(out.String(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			progs = append(progs, l)
		}
	}
	if len(progs) == 0 {
		return nil, fmt.Errorf("%s --list printed no programs", bin)
	}
	sort.Strings(progs)
	return progs, nil
}

// limitedBuffer keeps at most max bytes and notes whether more came. It does not embed
// bytes.Buffer: its ReadFrom would let io.Copy bypass the limit.
type limitedBuffer struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.buf.Len()+len(p) > b.max {
		b.over = true
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *limitedBuffer) String() string { return b.buf.String() }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
