package chroot

import (
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// binfmtDir is where binfmt_misc shows and takes its handlers (a variable for tests).
var binfmtDir = "/proc/sys/fs/binfmt_misc"

// EmulateSetuid makes setuid programs of arch keep their privileges under qemu-user,
// as they do natively: it registers qemu's handler again with the credentials flag
// (C, and O, which C needs), and returns the function that puts the original
// registration back. Debian's qemu-user-static registers without it, so a setuid
// qmail-queue would run with its caller's ids and could not write the queue. While
// the flag is set, every setuid binary of arch on this machine runs privileged, so
// the caller restores the handler when its tests are done. A handler that has the
// flag already is left alone (restore does nothing).
func EmulateSetuid(arch string) (restore func() error, err error) {
	handler, ok := qemuHandler[arch]
	if !ok {
		return nil, fmt.Errorf("chroot: no qemu-user handler known for %s", arch)
	}
	entry := binfmtDir + "/" + handler
	b, err := os.ReadFile(entry)
	if err != nil {
		return nil, fmt.Errorf("chroot: qemu's handler for %s: %w", arch, err)
	}
	if hasCredentialsFlag(string(b)) {
		return func() error { return nil }, nil
	}
	orig, err := registration(handler, string(b), "")
	if err != nil {
		return nil, err
	}
	withC, _ := registration(handler, string(b), "OC")
	if err := replaceHandler(entry, withC); err != nil {
		// Put the original back if the new one was refused after the old went.
		if _, serr := os.Stat(entry); serr != nil {
			os.WriteFile(binfmtDir+"/register", []byte(orig), 0)
		}
		return nil, err
	}
	return func() error { return replaceHandler(entry, orig) }, nil
}

// replaceHandler removes the handler at entry and registers line in its place.
func replaceHandler(entry, line string) error {
	if err := os.WriteFile(entry, []byte("-1"), 0); err != nil {
		return fmt.Errorf("chroot: removing %s: %w", entry, err)
	}
	if err := os.WriteFile(binfmtDir+"/register", []byte(line), 0); err != nil {
		return fmt.Errorf("chroot: registering %q: %w", line, err)
	}
	return nil
}

// registration turns a binfmt_misc entry as the kernel shows it (interpreter, flags,
// offset, magic, mask lines) into the line that registers it under name, with the
// flags in addFlags added. Only magic-number entries (the kind qemu registers) are
// understood.
func registration(name, entry, addFlags string) (string, error) {
	var interp, flags, offset, magic, mask string
	for _, line := range strings.Split(entry, "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "interpreter":
			interp = v
		case "flags:":
			flags = v
		case "offset":
			offset = v
		case "magic":
			magic = v
		case "mask":
			mask = v
		case "extension":
			return "", fmt.Errorf("chroot: %s is an extension handler, not a magic one", name)
		}
	}
	if interp == "" || magic == "" {
		return "", fmt.Errorf("chroot: cannot read the binfmt_misc entry %s:\n%s", name, entry)
	}
	for _, f := range addFlags {
		if !strings.ContainsRune(flags, f) {
			flags += string(f)
		}
	}
	m, err := escapeHex(magic)
	if err != nil {
		return "", fmt.Errorf("chroot: %s's magic: %w", name, err)
	}
	k, err := escapeHex(mask)
	if err != nil {
		return "", fmt.Errorf("chroot: %s's mask: %w", name, err)
	}
	return ":" + name + ":M:" + offset + ":" + m + ":" + k + ":" + interp + ":" + flags, nil
}

// escapeHex turns the hex digits binfmt_misc shows into the \xHH escapes it takes.
func escapeHex(s string) (string, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return "", err
	}
	var out strings.Builder
	for _, c := range b {
		fmt.Fprintf(&out, `\x%02x`, c)
	}
	return out.String(), nil
}
