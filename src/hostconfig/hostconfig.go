// Package hostconfig is the first configuration of a new installation, in the manner of
// qmail's config-fast: from the host's fully qualified name it writes the control files
// that have no sensible built-in default (me, defaultdomain, plusdomain, locals,
// rcpthosts) and sets up the alias user (postmaster, root, mailer-daemon), each only when
// it is absent, so running it again, or after an administrator's edits, changes nothing.
//
// rcpthosts gets exactly the local domains: a fresh installation accepts mail for itself
// and relays for nobody.
package hostconfig

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// File is one file to create, with its contents.
type File struct {
	Name    string
	Content string
}

// maxName is DNS's limit on a domain name's length.
const maxName = 253

// CheckName reports whether s can be a host name in control files: DNS labels of
// letters, digits and hyphens, separated by single dots. Anything else (spaces, slashes,
// newlines, an empty label) would write a broken or dangerous control file.
func CheckName(s string) error {
	if s == "" {
		return errors.New("empty host name")
	}
	if len(s) > maxName {
		return fmt.Errorf("host name longer than %d characters", maxName)
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" {
			return fmt.Errorf("host name %q has an empty label", s)
		}
		if len(label) > 63 {
			return fmt.Errorf("host name %q has a label longer than 63 characters", s)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host name %q has a label starting or ending with a hyphen", s)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("host name %q contains %q", s, c)
			}
		}
	}
	return nil
}

// Normalize lowercases a host name and drops one trailing dot (the root), as qmail's
// control files hold names without it.
func Normalize(s string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
}

// ControlFiles returns the control files config-fast derives from fqdn:
//
//	me             fqdn
//	defaultdomain  fqdn without its first label, when it has three or more labels
//	plusdomain     the last two labels
//	locals         fqdn and localhost
//	rcpthosts      the same as locals, so the host is not an open relay
func ControlFiles(fqdn string) ([]File, error) {
	fqdn = Normalize(fqdn)
	if err := CheckName(fqdn); err != nil {
		return nil, err
	}
	labels := strings.Split(fqdn, ".")
	defaultdomain := fqdn
	if len(labels) >= 3 {
		defaultdomain = strings.Join(labels[1:], ".")
	}
	plusdomain := fqdn
	if len(labels) >= 2 {
		plusdomain = strings.Join(labels[len(labels)-2:], ".")
	}
	locals := fqdn + "\n"
	if fqdn != "localhost" {
		locals += "localhost\n"
	}
	return []File{
		{"me", fqdn + "\n"},
		{"defaultdomain", defaultdomain + "\n"},
		{"plusdomain", plusdomain + "\n"},
		{"locals", locals},
		{"rcpthosts", locals},
	}, nil
}

// AliasNames are the addresses every mail host must accept (RFC 5321 postmaster; root
// and mailer-daemon because system software and bounces use them).
var AliasNames = []string{"postmaster", "mailer-daemon", "root"}

// AliasFile is the .qmail file written for each of AliasNames: delivery into the alias
// user's Maildir, with a comment saying how to send it to a person instead.
const AliasFile = "# Mail for this address is delivered to the alias user's Maildir.\n" +
	"# To send it to a person instead, replace the next line with &user@example.org\n" +
	"./Maildir/\n"

// Owner is who the created Maildir belongs to; nil leaves the creating process's.
type Owner struct{ UID, GID int }

// Result lists what Apply created, as paths.
type Result struct{ Created []string }

// Apply creates, in controlDir, each control file that does not exist yet, and in
// aliasDir the alias Maildir and the .qmail files for AliasNames that do not exist yet.
// Existing files are never read or changed. owner, when not nil, is given the Maildir.
func Apply(controlDir, aliasDir string, files []File, owner *Owner, log io.Writer) (Result, error) {
	var r Result
	for _, f := range files {
		p := filepath.Join(controlDir, f.Name)
		made, err := createIfAbsent(p, f.Content, 0o644)
		if err != nil {
			return r, err
		}
		if made {
			r.Created = append(r.Created, p)
			fmt.Fprintf(log, "wrote %s: %s\n", p, strings.ReplaceAll(strings.TrimSpace(f.Content), "\n", " "))
		} else {
			fmt.Fprintf(log, "kept %s\n", p)
		}
	}
	if aliasDir == "" {
		return r, nil
	}
	md := filepath.Join(aliasDir, "Maildir")
	for _, d := range []string{md, filepath.Join(md, "tmp"), filepath.Join(md, "new"), filepath.Join(md, "cur")} {
		err := os.Mkdir(d, 0o700)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return r, err
		}
		if owner != nil {
			if err := os.Lchown(d, owner.UID, owner.GID); err != nil {
				return r, err
			}
		}
		r.Created = append(r.Created, d)
	}
	for _, n := range AliasNames {
		p := filepath.Join(aliasDir, ".qmail-"+n)
		made, err := createIfAbsent(p, AliasFile, 0o644)
		if err != nil {
			return r, err
		}
		if made {
			r.Created = append(r.Created, p)
			fmt.Fprintf(log, "wrote %s: delivery to %s\n", p, md)
		} else {
			fmt.Fprintf(log, "kept %s\n", p)
		}
	}
	return r, nil
}

// createIfAbsent writes content to p unless p exists (as anything, even a dangling
// link). The content goes to a temporary file first and is linked into place, so p
// never appears half-written and an existing p is never replaced, even in a race.
func createIfAbsent(p, content string, mode fs.FileMode) (bool, error) {
	if _, err := os.Lstat(p); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".qmail-config-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Link(tmp.Name(), p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// Resolver is what HostFQDN needs of the name service (net.DefaultResolver's methods).
type Resolver interface {
	LookupHost(host string) ([]string, error)
	LookupAddr(addr string) ([]string, error)
}

type netResolver struct{}

func (netResolver) LookupHost(h string) ([]string, error) { return net.LookupHost(h) }
func (netResolver) LookupAddr(a string) ([]string, error) { return net.LookupAddr(a) }

// SystemResolver is the host's name service: /etc/hosts, then DNS.
var SystemResolver Resolver = netResolver{}

// NoDomain is the domain HostFQDN gives a host name that nothing completes. A name
// without a dot cannot be used as it is: qmail-inject appends defaultdomain to every
// host name without a dot, so mail for root@box would go to box.box, a remote host.
const NoDomain = "localdomain"

// HostFQDN returns the host's fully qualified name: the host name when it has a dot,
// else the first name that the host name's addresses map back to and that extends
// it (as in /etc/hosts' "127.0.1.1 mail.example.org mail"), else the host name in
// NoDomain.
func HostFQDN(hostname string, r Resolver) (string, error) {
	h := Normalize(hostname)
	if err := CheckName(h); err != nil {
		return "", err
	}
	if strings.Contains(h, ".") {
		return h, nil
	}
	addrs, err := r.LookupHost(h)
	if err != nil {
		return h + "." + NoDomain, nil
	}
	for _, a := range addrs {
		names, err := r.LookupAddr(a)
		if err != nil {
			continue
		}
		for _, n := range names {
			n = Normalize(n)
			if strings.HasPrefix(n, h+".") && CheckName(n) == nil {
				return n, nil
			}
		}
	}
	return h + "." + NoDomain, nil
}
