package manifest

// Core is the MTA's package; the others depend on it for the multi-call binary.
const Core = "notqmail"

// PackageDef is one of the split packages.
type PackageDef struct {
	Name    string
	Summary string
	// Description is the long description: lines of at most 80 characters.
	Description string
	// Programs are the multi-call programs it carries; the core carries every program
	// no other package claims. A package with none of its programs built is left out.
	Programs []string
	// Sections are the Debian sections.
	Section string
}

// Packages lists the packages in build order, core first.
var Packages = []PackageDef{
	{
		Name:    Core,
		Summary: "qmail-compatible mail transfer agent, written in Go",
		Description: "notqmail keeps qmail's programs, queue, control files and .qmail files,\n" +
			"so it installs over an existing qmail and keeps its mail and setup.\n" +
			"This package holds the MTA: SMTP server, queue, local and remote delivery,\n" +
			"sendmail and the .qmail helpers.",
		Section: "mail",
	},
	{
		Name:    "notqmail-pop3",
		Summary: "POP3 server for notqmail Maildirs",
		Description: "qmail-popup and qmail-pop3d serve the mail in users' Maildirs over POP3,\n" +
			"with a checkpassword program checking the password.",
		Programs: []string{"qmail-popup", "qmail-pop3d"},
		Section:  "mail",
	},
	{
		Name:    "notqmail-qmtp",
		Summary: "QMTP and QMQP for notqmail",
		Description: "qmail-qmtpd receives mail over QMTP; qmail-qmqpd and qmail-qmqpc\n" +
			"pass mail from QMQP clients to a central notqmail server.",
		Programs: []string{"qmail-qmtpd", "qmail-qmqpd", "qmail-qmqpc"},
		Section:  "mail",
	},
}

// ProgramPackage maps a program to its package when that is not the core.
var ProgramPackage = func() map[string]string {
	m := map[string]string{}
	for _, p := range Packages {
		for _, prog := range p.Programs {
			m[prog] = p.Name
		}
	}
	return m
}()

// built reports whether the package has something to carry.
func (p PackageDef) built(has map[string]bool) bool {
	if p.Name == Core {
		return true
	}
	for _, prog := range p.Programs {
		if has[prog] {
			return true
		}
	}
	return false
}

// Unit is a systemd unit shipped by a package.
type Unit struct {
	Name    string
	Program string // installed only when this program is built
	// Enable: enabled and started on installation where the distribution's convention
	// starts services (Debian). Units serving a protocol that relays for any client
	// (QMQP) or that needs site setup first (POP3's accounts; submission's certificate
	// and accounts) are not.
	Enable bool
	// Restart: restarted on upgrade when running (services, not their sockets).
	Restart bool
}

// Units lists the systemd units (packaging/services/systemd).
var Units = []Unit{
	{Name: "qmail-send.service", Program: "qmail-start", Enable: true, Restart: true},
	{Name: "qmail-smtpd.socket", Program: "qmail-smtpd", Enable: true},
	{Name: "qmail-smtpd.service", Program: "qmail-smtpd", Restart: true},
	{Name: "qmail-submission.socket", Program: "qmail-smtpd"},
	{Name: "qmail-submission.service", Program: "qmail-smtpd", Restart: true},
	{Name: "qmail-smtps.socket", Program: "qmail-smtpd"},
	{Name: "qmail-smtps.service", Program: "qmail-smtpd", Restart: true},
	{Name: "qmail-pop3d.socket", Program: "qmail-popup"},
	{Name: "qmail-pop3d@.service", Program: "qmail-popup"},
	{Name: "qmail-qmtpd.socket", Program: "qmail-qmtpd", Enable: true},
	{Name: "qmail-qmtpd.service", Program: "qmail-qmtpd", Restart: true},
	{Name: "qmail-qmqpd.socket", Program: "qmail-qmqpd"},
	{Name: "qmail-qmqpd.service", Program: "qmail-qmqpd", Restart: true},
}

// OpenRC lists the apk's OpenRC scripts (packaging/services/openrc) by program.
var OpenRC = []struct{ Name, Program string }{
	{"qmail-send", "qmail-start"},
	{"qmail-smtpd", "qmail-smtpd"},
}

// Runit lists the runit/daemontools run directories (packaging/services/runit): each
// has run and log/run.
var Runit = []struct{ Name, Program string }{
	{"qmail-send", "qmail-start"},
	{"qmail-smtpd", "qmail-smtpd"},
}

// UnitsOf returns the units a package ships for the programs built.
func UnitsOf(pkg string, has map[string]bool) []Unit {
	var us []Unit
	for _, u := range Units {
		if has[u.Program] && pkgOf(u.Program) == pkg {
			us = append(us, u)
		}
	}
	return us
}

func pkgOf(program string) string {
	if p, ok := ProgramPackage[program]; ok {
		return p
	}
	return Core
}

func addServices(add func(Entry), has map[string]bool) {
	for _, u := range Units {
		if has[u.Program] {
			add(Entry{Path: SystemdDir + "/" + u.Name, Kind: File, Mode: 0o644, Owner: "root", Group: "root",
				Origin: Service, Source: "systemd/" + u.Name, Package: ProgramPackage[u.Program], Formats: []Format{Deb, RPM}})
		}
	}
	for _, s := range OpenRC {
		if has[s.Program] {
			add(Entry{Path: OpenRCDir + "/" + s.Name, Kind: File, Mode: 0o755, Owner: "root", Group: "root",
				Origin: Service, Source: "openrc/" + s.Name, Package: ProgramPackage[s.Program], Formats: []Format{APK}})
		}
	}
	for i, r := range Runit {
		if i == 0 && has[r.Program] {
			add(Entry{Path: ServiceDir, Kind: Dir, Mode: 0o755, Owner: "root", Group: "root"})
		}
		if !has[r.Program] {
			continue
		}
		d := ServiceDir + "/" + r.Name
		pkg := ProgramPackage[r.Program]
		add(Entry{Path: d, Kind: Dir, Mode: 0o755, Owner: "root", Group: "root", Package: pkg})
		add(Entry{Path: d + "/log", Kind: Dir, Mode: 0o755, Owner: "root", Group: "root", Package: pkg})
		add(Entry{Path: d + "/run", Kind: File, Mode: 0o755, Owner: "root", Group: "root", Origin: Service, Source: "runit/" + r.Name + "/run", Package: pkg})
		add(Entry{Path: d + "/log/run", Kind: File, Mode: 0o755, Owner: "root", Group: "root", Origin: Service, Source: "runit/" + r.Name + "/log/run", Package: pkg})
	}
}

// ArchAll is the architecture of packages without binaries (deb all, rpm and apk
// noarch).
const ArchAll = "all"

// HasBinaries reports whether a package carries built binaries, and so is built per
// architecture.
func (m Manifest) HasBinaries(pkg string) bool {
	for _, e := range m.Entries {
		if e.Pkg() == pkg && e.Origin == Binary {
			return true
		}
	}
	return false
}
