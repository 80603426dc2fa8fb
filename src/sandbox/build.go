package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Binaries are the executables a sandbox's bin/ is made from: the multi-call binary
// (linked under every program name it lists) and the programs built on their own.
var Binaries = []string{"notqmail", "qmail-queue", "qmail-smtpd"}

const modulePath = "github.com/notqmail/notqmail"

// Build compiles the sandbox's binaries into dir with `go build`, reusing Go's build
// cache. It must run inside the module's source tree.
func Build(dir string) error {
	if err := os.MkdirAll(dir, 0755); err != nil {
		return err
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("sandbox: go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return fmt.Errorf("sandbox: building needs the %s source tree as working directory", modulePath)
	}
	for _, b := range Binaries {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b), modulePath+"/src/cmd/"+b)
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("sandbox: go build %s: %v\n%s", b, err, out.String())
		}
	}
	return nil
}

var (
	buildOnce sync.Once
	builtDir  string
	buildErr  error
)

// builtBinaries builds the binaries once per process into a cache directory named
// after the process, and removes the caches of processes that no longer exist, so
// repeated test runs do not pile up binaries in the temp directory.
func builtBinaries() (string, error) {
	buildOnce.Do(func() {
		base := filepath.Join(os.TempDir(), "notqmail-sandbox-bin-"+strconv.Itoa(os.Geteuid()))
		if err := os.MkdirAll(base, 0755); err != nil {
			buildErr = err
			return
		}
		// The sandbox owner (nobody, when tests run as root) must reach the binaries.
		if err := os.Chmod(base, 0755); err != nil {
			buildErr = err
			return
		}
		removeStale(base)
		builtDir = filepath.Join(base, strconv.Itoa(os.Getpid()))
		os.RemoveAll(builtDir)
		buildErr = Build(builtDir)
	})
	return builtDir, buildErr
}

func removeStale(base string) {
	ents, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(filepath.Join(base, e.Name()))
		}
	}
}

// programNames asks the multi-call binary which programs it serves.
func programNames(notqmail string) ([]string, error) {
	out, err := exec.Command(notqmail, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("sandbox: %s --list: %w", notqmail, err)
	}
	var names []string
	for _, n := range strings.Fields(string(out)) {
		if n != "" && !strings.ContainsAny(n, "/\\") && n != "." && n != ".." {
			names = append(names, n)
		}
	}
	return names, nil
}

// install puts src at dst: a hard link when possible (cheap, same inode as the
// cache), else a copy.
func install(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0755)
}
