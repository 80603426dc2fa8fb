// Package testpeer finds the real programs that tests talk to (tinycdb's cdb, swaks,
// tcpserver, rpm, ...), so tests run against real peers rather than mocks of them.
//
// Under `go run mage.go test` (which installs the peers and sets NOTQMAIL_REQUIRE_PEERS)
// a missing peer fails the test; under a bare `go test` it skips the test and names the
// package to install, so a partial machine still runs everything else.
package testpeer

import (
	"os"
	"os/exec"
	"sort"
	"testing"
)

// Packages maps each peer command to the Debian package that provides it. The mage test
// target installs every package listed here.
var Packages = map[string]string{
	"cdb":       "tinycdb",
	"dpkg-deb":  "dpkg",
	"postfix":   "postfix",
	"smtp-sink": "postfix",
	"postcat":   "postfix",
	"rpm":       "rpm",
	"python3":   "python3",
	"swaks":     "swaks",
	"tcpserver": "ucspi-tcp",
	"tcprules":  "ucspi-tcp",
	"strace":    "strace",
	"groff":     "groff-base",
	"tar":       "tar",
	// Site patches (packaging/patches) are applied and checked with the real tools.
	"git":     "git",
	"patch":   "patch",
	"diff":    "diffutils",
	"openssl": "openssl",
	// The distribution matrix (packaging/chroot, packaging/matrix): Debian roots and
	// arm64 under qemu-user.
	"mmdebstrap":          "mmdebstrap",
	"debootstrap":         "debootstrap",
	"qemu-aarch64-static": "qemu-user-static",
	"update-binfmts":      "binfmt-support",
	"arch-test":           "arch-test",
	// Package checks (packaging/release): lint, and signatures made with throwaway keys.
	"lintian": "lintian",
	"rpmlint": "rpmlint",
	"cpio":    "cpio",
	"gpg":     "gpg",
	"rpmkeys": "rpm",
}

// RequireEnv is the variable that makes a missing peer a failure instead of a skip.
const RequireEnv = "NOTQMAIL_REQUIRE_PEERS"

// Need returns the path of a peer command, or stops the test: a failure when peers are
// required, a skip otherwise.
func Need(t testing.TB, cmd string) string {
	t.Helper()
	p, err := exec.LookPath(cmd)
	if err == nil {
		return p
	}
	pkg := Packages[cmd]
	if pkg == "" {
		pkg = "(unknown: add it to testpeer.Packages)"
	}
	msg := "test peer " + cmd + " not found; install Debian package " + pkg
	if os.Getenv(RequireEnv) != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// DebianPackages returns the Debian packages providing all peers, sorted, without
// duplicates.
func DebianPackages() []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range Packages {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}
