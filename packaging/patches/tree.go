package patches

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Tree is a scratch copy of a source tree kept as its own git repository: every patch
// applied is committed, so the next one is checked against exactly what came before
// it, git apply --3way finds the blobs it needs, and a failed attempt is undone.
type Tree struct {
	Dir string
}

// skipTop are top-level entries never copied: build output and the repository itself.
var skipTop = map[string]bool{".git": true, "build": true, "dist": true}

// NewTree copies src into dir (which must not exist or be empty) and commits it. When
// objects names another repository's object directory, it is borrowed read-only
// (git alternates) so that 3-way merges find blobs from that repository's history.
func NewTree(ctx context.Context, src, dir string, objects ...string) (*Tree, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := CopyTree(ctx, src, dir); err != nil {
		return nil, err
	}
	t := &Tree{Dir: dir}
	if _, err := t.git(ctx, "init", "-q"); err != nil {
		return nil, err
	}
	var alts []string
	for _, o := range objects {
		if o != "" {
			alts = append(alts, o)
		}
	}
	if len(alts) > 0 {
		p := filepath.Join(dir, ".git", "objects", "info", "alternates")
		if err := os.WriteFile(p, []byte(strings.Join(alts, "\n")+"\n"), 0o644); err != nil {
			return nil, err
		}
	}
	if err := t.Commit(ctx, "source"); err != nil {
		return nil, err
	}
	return t, nil
}

// Commit records the whole work tree.
func (t *Tree) Commit(ctx context.Context, msg string) error {
	if _, err := t.git(ctx, "add", "-A"); err != nil {
		return err
	}
	_, err := t.git(ctx, "commit", "-q", "--allow-empty", "--no-verify", "-m", msg)
	return err
}

// Reset throws away everything since the last commit, including new files.
func (t *Tree) Reset(ctx context.Context) error {
	if _, err := t.git(ctx, "reset", "-q", "--hard", "HEAD"); err != nil {
		return err
	}
	_, err := t.git(ctx, "clean", "-q", "-fd")
	return err
}

// git runs git in the tree with a fixed identity and none of the caller's hooks,
// signing or repository variables, so the scratch repository behaves the same
// everywhere and never touches another one.
func (t *Tree) git(ctx context.Context, args ...string) (string, error) {
	out, errOut, err := t.run(ctx, "git", append([]string{
		"-c", "user.name=notqmail patches", "-c", "user.email=patches@localhost",
		"-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null",
		"-c", "core.autocrlf=false", "-c", "gc.auto=0", "-c", "advice.detachedHead=false",
	}, args...)...)
	if err != nil {
		return out, fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, firstLines(errOut, 20))
	}
	return out, nil
}

// maxToolOutput bounds what is kept of a tool's output.
const maxToolOutput = 1 << 20

// run runs a tool in the tree in the C locale (its messages are parsed) and returns
// its standard output and error, each bounded.
func (t *Tree) run(ctx context.Context, name string, args ...string) (string, string, error) {
	return runIn(ctx, t.Dir, nil, name, args...)
}

func runIn(ctx context.Context, dir string, stdin io.Reader, name string, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	cmd.Env = toolEnv()
	var out, errb limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// toolEnv is the environment without variables that would point git elsewhere, in
// the C locale, with a fixed commit time.
func toolEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GIT_") || strings.HasPrefix(k, "LC_") || k == "LANG" || k == "LANGUAGE" || k == "QUILT_PATCHES" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_DATE=2000-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2000-01-01T00:00:00Z")
}

type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxToolOutput - b.Len(); room > 0 {
		if len(p) > room {
			b.Buffer.Write(p[:room])
		} else {
			b.Buffer.Write(p)
		}
	}
	return len(p), nil
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}

// CopyTree copies the source tree at src into dst: in a git work tree the tracked
// files and the untracked ones git does not ignore (so uncommitted work is built and
// tested as it is), else every file but build output. Symbolic links are copied as
// links; the executable bit is kept.
func CopyTree(ctx context.Context, src, dst string) error {
	names, err := gitFiles(ctx, src)
	if err != nil {
		return err
	}
	if names == nil {
		return walkCopy(src, dst)
	}
	for _, n := range names {
		if top, _, _ := strings.Cut(n, "/"); skipTop[top] {
			continue
		}
		if err := copyEntry(filepath.Join(src, n), filepath.Join(dst, n)); err != nil {
			if os.IsNotExist(err) {
				continue // tracked but deleted in the work tree
			}
			return err
		}
	}
	return nil
}

// gitFiles lists the files of a git work tree whose top is src; nil when src is not
// the top of one.
func gitFiles(ctx context.Context, src string) ([]string, error) {
	top, _, err := runIn(ctx, src, nil, "git", "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, nil
	}
	a, _ := filepath.EvalSymlinks(strings.TrimSpace(top))
	b, _ := filepath.Abs(src)
	b, _ = filepath.EvalSymlinks(b)
	if a == "" || a != b {
		return nil, nil
	}
	cmd := exec.CommandContext(ctx, "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = src
	cmd.Env = toolEnv()
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git ls-files in %s: %v", src, err)
	}
	seen := map[string]bool{}
	var names []string
	for _, n := range strings.Split(string(out), "\x00") {
		if n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return names, nil
}

func walkCopy(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			if top, _, _ := strings.Cut(filepath.ToSlash(rel), "/"); skipTop[top] && !strings.Contains(filepath.ToSlash(rel), "/") {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		return copyEntry(p, filepath.Join(dst, rel))
	})
}

func copyEntry(from, to string) error {
	st, err := os.Lstat(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(from)
		if err != nil {
			return err
		}
		return os.Symlink(target, to)
	case st.Mode().IsRegular():
		in, err := os.Open(from)
		if err != nil {
			return err
		}
		defer in.Close()
		mode := fs.FileMode(0o644)
		if st.Mode()&0o111 != 0 {
			mode = 0o755
		}
		out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	}
	return nil // sockets, devices and the like are not source
}
