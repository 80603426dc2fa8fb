// Package manifest is the one list of what the notqmail package installs, in the spirit
// of qmail's hier.c: every path with its type, mode, owner and group. The nfpm package
// configuration (deb, rpm, apk) is generated from it, so the formats cannot disagree.
//
// Layout (see README.md):
//
//	/usr/lib/notqmail/bin/notqmail       the multi-call binary, root:qmail 0755
//	/usr/lib/notqmail/bin/<program>      a link to notqmail for every program it serves
//	/usr/lib/notqmail/bin/qmail-queue    its own binary, qmailq:qmail 04711
//	/usr/lib/notqmail/bin/qmail-smtpd    its own binary, root:qmail 0755
//	/var/qmail/bin -> /usr/lib/notqmail/bin
//	/etc/qmail/                          configuration (package conffiles)
//	/var/qmail/control -> /etc/qmail
//	/var/qmail/users, /var/qmail/alias   as qmail lays them out
//	/var/qmail/run                       qmail-queued's socket, qmailq:qmail 0755
//	/usr/share/man/manN/*.N.gz           man pages, rendered from src/man
//	/usr/sbin/sendmail, /usr/lib/sendmail, /usr/bin/mailq, /usr/bin/newaliases,
//	                                     links made when those programs exist (deb, apk;
//	                                     the rpm uses the mta alternative instead)
//	/usr/lib/systemd/system/*            systemd units (deb, rpm)
//	/etc/init.d/*                        OpenRC scripts (apk)
//	/usr/lib/notqmail/service/*/run      runit/daemontools run directories
//	/usr/share/doc/<package>/            copyright and changelog
//
// Entries belong to one of the split packages (packages.go): notqmail, notqmail-pop3,
// notqmail-qmtp.
package manifest

import (
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/notqmail/notqmail/packaging/manpage"
	"github.com/notqmail/notqmail/src/ids"
)

// Kind is what an entry installs.
type Kind string

// The kinds of entries.
const (
	File    Kind = "file"
	Symlink Kind = "symlink"
	Dir     Kind = "dir"
	Config  Kind = "config" // a file the site may edit; upgrades never overwrite it
	Doc     Kind = "doc"    // documentation: a file that the rpm marks %doc
)

// Origin says under which source root an entry's Source lies.
type Origin int

// The source roots, resolved by Sources when packaging.
const (
	None      Origin = iota // symlinks and directories have no source file
	Binary                  // a built binary, per architecture
	ManPage                 // a rendered man page, man<N>/<page>.gz
	Etc                     // a committed configuration file in packaging/etc
	Generated               // a file written at packaging time (scripts)
	Service                 // a committed service file in packaging/services
)

// Entry is one installed path.
type Entry struct {
	Path   string      // absolute path on the target system
	Kind   Kind        // file, symlink, dir or config
	Mode   fs.FileMode // Unix permission bits, including 04000 setuid and 02000 setgid
	Owner  string      // user name (packages store owners by name)
	Group  string      // group name
	Origin Origin      // root of Source, for files
	Source string      // files: path under the Origin root; symlinks: the link target
	// Package is the split package the entry belongs to; empty means Core.
	Package string
	// Formats, when not empty, limits the entry to these package formats.
	Formats []Format
}

// In reports whether the entry is part of format f.
func (e Entry) In(f Format) bool {
	if len(e.Formats) == 0 {
		return true
	}
	for _, x := range e.Formats {
		if x == f {
			return true
		}
	}
	return false
}

// Pkg is the package the entry belongs to.
func (e Entry) Pkg() string {
	if e.Package == "" {
		return Core
	}
	return e.Package
}

// Paths of the layout.
const (
	LibBin    = "/usr/lib/notqmail/bin"
	MultiCall = "notqmail"
	QmailHome = "/var/qmail"
	EtcQmail  = "/etc/qmail"
	// EtcDefaults holds the apk's copies of the shipped configuration: the apk has no
	// conffiles, so its scripts copy each into /etc/qmail only when it is absent.
	EtcDefaults = "/usr/share/notqmail/etc"
	// ServiceDir holds the runit/daemontools run directories.
	ServiceDir = "/usr/lib/notqmail/service"
	// SystemdDir is where packaged systemd units go.
	SystemdDir = "/usr/lib/systemd/system"
	// OpenRCDir is where the apk's OpenRC scripts go.
	OpenRCDir = "/etc/init.d"
)

// Standalone describes a program built as its own binary under src/cmd rather than
// served by the multi-call binary. A binary there that is not listed here stops the
// build: its owner and mode must be decided, not defaulted.
var Standalone = map[string]struct {
	Mode         fs.FileMode
	Owner, Group string
}{
	// setuid qmailq so that anyone can queue mail while only qmailq writes the queue
	// (reference §1.5).
	"qmail-queue": {0o4711, ids.Qmailq, ids.GroupQmail},
	// Its own binary because tcpserver starts one per connection: a smaller program
	// starts with fewer page faults and package initialisers (see qmail-smtpd(8)).
	"qmail-smtpd": {0o755, "root", ids.GroupQmail},
}

// ConfigFiles are shipped in /etc/qmail from packaging/etc. Only files whose default
// the packages decide belong here; me and friends are host-specific and are made at
// install time.
var ConfigFiles = []string{"defaultdelivery"}

// Inputs is what a build produced: the programs and the man pages.
type Inputs struct {
	Programs   []string       // served by the multi-call binary (notqmail --list)
	Standalone []string       // own binaries found under src/cmd, other than notqmail
	Pages      []manpage.Page // man page sources
}

// Manifest is the list of entries, sorted by path.
type Manifest struct {
	Entries []Entry
	// Missing lists the programs, by name, that have no man page. The packages are
	// still built (a missing page must not stop a release of working programs); the
	// packaging tests fail on it.
	Missing []string
	// Built is the set of programs the build has, multi-call and standalone.
	Built map[string]bool
}

// SystemLinks are the places other software looks for an MTA's commands; each is
// installed when the program it names exists. Targets are relative, as Debian policy
// wants within /usr.
// The rpm leaves them to the mta alternative (scripts), as Fedora's MTAs do.
var SystemLinks = []struct{ Path, Program, Target string }{
	{"/usr/sbin/sendmail", "sendmail", "../lib/notqmail/bin/sendmail"},
	{"/usr/lib/sendmail", "sendmail", "../sbin/sendmail"},
	{"/usr/bin/mailq", "mailq", "../lib/notqmail/bin/mailq"},
	{"/usr/bin/newaliases", "newaliases", "../lib/notqmail/bin/newaliases"},
}

// New builds the manifest for a build's inputs. It fails when a standalone binary is
// unknown or when two entries claim one path; programs without a man page are listed
// in Missing.
func New(in Inputs) (Manifest, error) {
	var m Manifest
	add := func(e Entry) { m.Entries = append(m.Entries, e) }
	has := map[string]bool{}
	for _, p := range in.Programs {
		has[p] = true
	}
	for _, p := range in.Standalone {
		has[p] = true
	}
	m.Built = has

	dir := func(p, owner, group string, mode fs.FileMode) {
		add(Entry{Path: p, Kind: Dir, Mode: mode, Owner: owner, Group: group})
	}
	dir("/usr/lib/notqmail", "root", "root", 0o755)
	dir(LibBin, "root", ids.GroupQmail, 0o755)
	dir(QmailHome, "root", ids.GroupQmail, 0o755)
	dir(QmailHome+"/users", "root", ids.GroupQmail, 0o755)
	dir(QmailHome+"/alias", ids.Alias, ids.GroupQmail, 0o2755)
	// qmail-queued's socket directory: only qmailq may put a socket there, everyone may
	// connect (qmail-queued(8)).
	dir(QmailHome+"/run", ids.Qmailq, ids.GroupQmail, 0o755)
	dir(EtcQmail, "root", ids.GroupQmail, 0o755)
	add(Entry{Path: QmailHome + "/bin", Kind: Symlink, Source: LibBin, Owner: "root", Group: "root", Mode: 0o777})
	add(Entry{Path: QmailHome + "/control", Kind: Symlink, Source: EtcQmail, Owner: "root", Group: "root", Mode: 0o777})

	// One inode for every multi-call program: a symlink cannot carry its own mode, so
	// the binary gets the widest mode qmail gives any of them; the programs that qmail
	// installs 0700 (qmail-lspawn, qmail-start, qmail-newu, qmail-newmrh) need root's
	// privileges to do anything anyway.
	add(Entry{Path: LibBin + "/" + MultiCall, Kind: File, Mode: 0o755, Owner: "root", Group: ids.GroupQmail, Origin: Binary, Source: MultiCall})
	for _, p := range in.Programs {
		if err := checkName(p); err != nil {
			return Manifest{}, err
		}
		if p == MultiCall {
			continue
		}
		if _, own := Standalone[p]; own {
			return Manifest{}, fmt.Errorf("program %s is both in the multi-call binary and its own binary", p)
		}
		add(Entry{Path: LibBin + "/" + p, Kind: Symlink, Source: MultiCall, Owner: "root", Group: "root", Mode: 0o777, Package: ProgramPackage[p]})
	}
	for _, p := range in.Standalone {
		s, ok := Standalone[p]
		if !ok {
			return Manifest{}, fmt.Errorf("src/cmd/%s is a binary the manifest does not know: add its owner and mode to manifest.Standalone", p)
		}
		add(Entry{Path: LibBin + "/" + p, Kind: File, Mode: s.Mode, Owner: s.Owner, Group: s.Group, Origin: Binary, Source: p})
	}

	for _, l := range SystemLinks {
		if has[l.Program] {
			add(Entry{Path: l.Path, Kind: Symlink, Source: l.Target, Owner: "root", Group: "root", Mode: 0o777, Formats: []Format{Deb, APK}})
		}
	}
	for _, c := range ConfigFiles {
		add(Entry{Path: EtcQmail + "/" + c, Kind: Config, Mode: 0o644, Owner: "root", Group: "root", Origin: Etc, Source: c, Formats: []Format{Deb, RPM}})
		add(Entry{Path: EtcDefaults + "/" + c, Kind: File, Mode: 0o644, Owner: "root", Group: "root", Origin: Etc, Source: c, Formats: []Format{APK}})
	}
	addServices(add, has)
	for _, pkg := range Packages {
		if !pkg.built(has) {
			continue
		}
		doc := "/usr/share/doc/" + pkg.Name
		add(Entry{Path: doc + "/copyright", Kind: Doc, Mode: 0o644, Owner: "root", Group: "root", Origin: Etc, Source: "copyright", Package: pkg.Name})
		add(Entry{Path: "/usr/share/lintian/overrides/" + pkg.Name, Kind: File, Mode: 0o644, Owner: "root", Group: "root", Origin: Etc, Source: "lintian-overrides/" + pkg.Name, Package: pkg.Name, Formats: []Format{Deb}})
	}

	paged := map[string]bool{}
	for _, pg := range in.Pages {
		paged[pg.Name] = true
		add(Entry{Path: pg.InstallPath(), Kind: Doc, Mode: 0o644, Owner: "root", Group: "root", Origin: ManPage, Source: "man" + pg.Section + "/" + pg.File(), Package: ProgramPackage[pg.Name]})
	}
	for _, p := range append(append([]string{}, in.Programs...), in.Standalone...) {
		if !paged[p] {
			m.Missing = append(m.Missing, p)
		}
	}
	sort.Strings(m.Missing)

	sort.Slice(m.Entries, func(i, j int) bool { return m.Entries[i].Path < m.Entries[j].Path })
	for i := 1; i < len(m.Entries); i++ {
		if m.Entries[i].Path == m.Entries[i-1].Path {
			return Manifest{}, fmt.Errorf("two manifest entries for %s", m.Entries[i].Path)
		}
	}
	return m, nil
}

// checkName keeps program names (which come from running a built binary) to what
// can safely be a file name in bin/.
func checkName(p string) error {
	if p == "" || p == "." || p == ".." || strings.ContainsAny(p, "/\\ \t\n\x00") {
		return fmt.Errorf("program name %q cannot be a file name", p)
	}
	return nil
}

// Lookup returns the entry for an installed path.
func (m Manifest) Lookup(p string) (Entry, bool) {
	i := sort.Search(len(m.Entries), func(i int) bool { return m.Entries[i].Path >= p })
	if i < len(m.Entries) && m.Entries[i].Path == p {
		return m.Entries[i], true
	}
	return Entry{}, false
}
