package manifest

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"

	"github.com/notqmail/notqmail/src/ids"
)

// Account is one of qmail's users with its primary group and home (reference §1.3).
type Account struct {
	Name, Group, Home string
}

// Accounts lists qmail's users in conf-users order (without root).
var Accounts = []Account{
	{ids.Alias, ids.GroupNofiles, QmailHome + "/alias"},
	{ids.Qmaild, ids.GroupNofiles, QmailHome},
	{ids.Qmaill, ids.GroupNofiles, QmailHome},
	{ids.Qmailp, ids.GroupNofiles, QmailHome},
	{ids.Qmailq, ids.GroupQmail, QmailHome},
	{ids.Qmailr, ids.GroupQmail, QmailHome},
	{ids.Qmails, ids.GroupQmail, QmailHome},
}

// Format is a package format.
type Format string

// The formats built.
const (
	Deb Format = "deb"
	RPM Format = "rpm"
	APK Format = "apk"
)

// Formats lists the formats in build order.
var Formats = []Format{Deb, RPM, APK}

// Script is a maintainer script slot, named as nfpm names it.
type Script string

// The script slots used. deb and rpm have the first four; the apk also has the
// upgrade ones (its install scripts do not run on upgrade).
const (
	PreInstall  Script = "preinstall"
	PostInstall Script = "postinstall"
	PreRemove   Script = "preremove"
	PostRemove  Script = "postremove"
	PreUpgrade  Script = "preupgrade"
	PostUpgrade Script = "postupgrade"
)

// CreatedRecord lists, one "user:NAME" or "group:NAME" a line, the accounts the
// packages created, so that a purge removes those and never an administrator's own
// qmail users from an earlier installation.
const CreatedRecord = "/var/lib/notqmail/created-accounts"

// QueueDir is the queue; scripts create and repair it with qmail-qfix, never ship it.
const QueueDir = QmailHome + "/queue"

// GeneratedConfig are the files qmail-config writes on installation, removed on purge.
var GeneratedConfig = []string{"me", "defaultdomain", "plusdomain", "locals", "rcpthosts"}

// scriptData is what the templates see.
type scriptData struct {
	Pkg       string
	Core      bool
	Bin       string
	Groups    []string
	Accounts  []Account
	Record    string
	Queue     string
	Home      string
	Etc       string
	Defaults  string
	Config    []string // shipped configuration (apk copies it)
	Generated []string
	Units     string // every unit of the package, space-separated
	Enable    string // units enabled on installation
	Start     string // units started on installation (Debian)
	Restart   string // units restarted on upgrade
	Sendmail  bool   // the package provides sendmail (the rpm's mta alternative)
	Mailq     bool
}

func join(us []Unit, keep func(Unit) bool) string {
	var n []string
	for _, u := range us {
		if keep(u) {
			n = append(n, u.Name)
		}
	}
	return strings.Join(n, " ")
}

// Scripts returns the maintainer scripts of a package for a format, by slot. has says
// which programs were built.
func Scripts(pkg string, f Format, has map[string]bool) (map[Script][]byte, error) {
	us := UnitsOf(pkg, has)
	d := scriptData{
		Pkg: pkg, Core: pkg == Core, Bin: LibBin, Groups: ids.Groups, Accounts: Accounts,
		Record: CreatedRecord, Queue: QueueDir, Home: QmailHome, Etc: EtcQmail, Defaults: EtcDefaults,
		Config: ConfigFiles, Generated: GeneratedConfig,
		Units:    join(us, func(Unit) bool { return true }),
		Enable:   join(us, func(u Unit) bool { return u.Enable }),
		Restart:  join(us, func(u Unit) bool { return u.Restart }),
		Sendmail: pkg == Core && has["sendmail"],
		Mailq:    pkg == Core && has["mailq"],
	}
	d.Start = d.Enable
	set, ok := scriptTemplates[f]
	if !ok {
		return nil, fmt.Errorf("no scripts for format %q", f)
	}
	out := map[Script][]byte{}
	for slot, t := range set {
		var b bytes.Buffer
		if err := t.Execute(&b, d); err != nil {
			return nil, fmt.Errorf("%s %s %s: %w", pkg, f, slot, err)
		}
		// A template with nothing to do for this package renders to its header alone:
		// leave the slot out rather than ship an empty script.
		if s := b.String(); strings.TrimSpace(strings.TrimPrefix(s, scriptHeader)) == "exit 0" {
			continue
		}
		out[slot] = b.Bytes()
	}
	return out, nil
}

// CorePreInstall returns the core package's pre-install script for a format.
func CorePreInstall(f Format) ([]byte, error) {
	s, err := Scripts(Core, f, map[string]bool{})
	if err != nil {
		return nil, err
	}
	return s[PreInstall], nil
}

const scriptHeader = "#!/bin/sh\nset -e\n"

// accounts creates qmail's groups and users before the files are unpacked, because all
// three formats store owners by name. Each step checks first, so reinstalls and
// upgrades change nothing, and an administrator's existing qmail users (with their own
// uids) are kept and not recorded as ours.
const accounts = `{{define "accounts"}}nologin=/usr/sbin/nologin
[ -x "$nologin" ] || nologin=/sbin/nologin
[ -x "$nologin" ] || nologin=/bin/false
mkdir -p "$(dirname {{.Record}})"
{{- range .Groups}}
{{template "hasgroup" .}} || { {{template "addgroup" .}}; echo group:{{.}} >> {{$.Record}}; }{{end}}
{{- range .Accounts}}
{{template "hasuser" .Name}} || { {{template "adduser" .}}; echo user:{{.Name}} >> {{$.Record}}; }{{end}}
{{end}}`

// shadow is Debian's and RPM distributions' account tooling (Debian: package passwd,
// a Pre-Depends); getent also sees users from NSS sources such as LDAP.
const shadow = `{{define "hasgroup"}}getent group {{.}} >/dev/null 2>&1{{end}}
{{- define "addgroup"}}groupadd -r {{.}}{{end}}
{{- define "hasuser"}}getent passwd {{.}} >/dev/null 2>&1{{end}}
{{- define "adduser"}}useradd -r -M -g {{.Group}} -d {{.Home}} -s "$nologin" -c "qmail {{.Name}}" {{.Name}}{{end}}
{{- define "deluser"}}userdel {{.}}{{end}}
{{- define "delgroup"}}groupdel {{.}}{{end}}`

// busybox is Alpine's, which has no getent by default.
const busybox = `{{define "hasgroup"}}grep -q '^{{.}}:' /etc/group{{end}}
{{- define "addgroup"}}addgroup -S {{.}}{{end}}
{{- define "hasuser"}}id -u {{.}} >/dev/null 2>&1{{end}}
{{- define "adduser"}}adduser -S -D -H -G {{.Group}} -h {{.Home}} -s "$nologin" -g "qmail {{.Name}}" {{.Name}}{{end}}
{{- define "deluser"}}deluser {{.}}{{end}}
{{- define "delgroup"}}delgroup {{.}}{{end}}`

// takeover runs before the first unpacking. On a host with a qmail-style /var/qmail
// it moves the real control/ directory to /etc/qmail and the old bin/ aside, so the
// package's links can take their places and every qmail path keeps working. With a
// /etc/qmail already present the real control/ stays and remains the one in use.
const takeover = `{{define "takeover"}}if [ -d {{.Home}}/control ] && [ ! -L {{.Home}}/control ]; then
	if [ ! -e {{.Etc}} ]; then
		mv {{.Home}}/control {{.Etc}}
		echo "notqmail: moved {{.Home}}/control to {{.Etc}}; {{.Home}}/control links to it"
	else
		echo "notqmail: keeping the existing {{.Home}}/control directory; {{.Etc}} is not used" >&2
	fi
fi
if [ -d {{.Home}}/bin ] && [ ! -L {{.Home}}/bin ]; then
	mv {{.Home}}/bin {{.Home}}/bin.before-notqmail
	echo "notqmail: moved the old {{.Home}}/bin to {{.Home}}/bin.before-notqmail"
fi
{{end}}`

// configure runs after every installation and upgrade: the first configuration where
// files are absent, and the queue created or repaired. Neither touches what exists.
// qmail-qfix exits 1 when problems remain that it may not fix while qmail-send runs
// (stray files, a partly held message): worth a warning, not a failed installation.
const configure = `{{define "configure"}}{{.Bin}}/qmail-config
{{.Bin}}/qmail-qfix -f {{.Queue}} || {
	rc=$?
	[ "$rc" -eq 1 ] || exit "$rc"
	echo "notqmail: qmail-qfix left problems in {{.Queue}} it may not fix now; run qmail-qfix {{.Queue}} to see them" >&2
}
{{end}}`

// apkdefaults copies the shipped configuration into /etc/qmail where it is absent: the
// apk's guarantee that upgrades never overwrite configuration.
const apkdefaults = `{{define "apkdefaults"}}{{range .Config}}[ -e {{$.Etc}}/{{.}} ] || [ -L {{$.Etc}}/{{.}} ] || cp -p {{$.Defaults}}/{{.}} {{$.Etc}}/{{.}}
{{end}}{{end}}`

// purge removes, on Debian's purge only, everything the MTA kept: the queue (with any
// mail still in it), all of /etc/qmail and users/ (the site's own files too: purge is
// the request to forget the configuration), the alias files qmail-config wrote and its
// Maildir when it holds no mail, and the accounts the packages created, users before
// groups. Debian packages rarely remove system users, because files may still
// belong to them; these go only on purge and only when the packages made them.
const purge = `{{define "purge"}}rm -rf {{.Queue}}
rm -rf {{.Etc}} {{.Home}}/users
for n in postmaster mailer-daemon root; do rm -f {{.Home}}/alias/.qmail-$n; done
for d in new cur tmp; do rmdir {{.Home}}/alias/Maildir/$d 2>/dev/null || true; done
rmdir {{.Home}}/alias/Maildir 2>/dev/null || true
rmdir {{.Home}}/alias {{.Home}} 2>/dev/null || true
# Mail still in the alias Maildir stays, no longer in a group that is about to go.
for d in {{.Home}}/alias {{.Home}}; do
	[ ! -d "$d" ] || chgrp root "$d" 2>/dev/null || true
done
if [ -f {{.Record}} ]; then
	grep '^user:' {{.Record}} | cut -d: -f2 | while read -r u; do userdel "$u" >/dev/null 2>&1 || true; done
	grep '^group:' {{.Record}} | cut -d: -f2 | while read -r g; do groupdel "$g" >/dev/null 2>&1 || true; done
	rm -f {{.Record}}
	rmdir "$(dirname {{.Record}})" 2>/dev/null || true
fi
{{end}}`

const common = accounts + takeover + configure + apkdefaults + purge

func must(name, text string) *template.Template {
	return template.Must(template.New(name).Parse(text))
}

// Debian: dpkg's arguments; systemd units enabled with deb-systemd-helper (which works
// without a running systemd, so a chroot or image gets them enabled too) and started
// with deb-systemd-invoke only when systemd runs, as debhelper's snippets do.
var debScripts = map[Script]*template.Template{
	PreInstall: must("deb-preinst", scriptHeader+common+shadow+`{{if .Core}}
case "$1" in
install|upgrade)
{{template "accounts" .}}	if [ "$1" = install ]; then
{{template "takeover" .}}	fi
	;;
esac
{{end}}exit 0
`),
	PostInstall: must("deb-postinst", scriptHeader+common+`{{if .Core}}
if [ "$1" = configure ]; then
{{template "configure" .}}fi
{{end}}{{if .Units}}
if [ "$1" = configure ] || [ "$1" = abort-upgrade ] || [ "$1" = abort-deconfigure ] || [ "$1" = abort-remove ]; then
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		for u in {{.Units}}; do
			deb-systemd-helper unmask "$u" >/dev/null || true
		done
{{- if .Enable}}
		for u in {{.Enable}}; do
			# was-enabled is true on a first installation, so new installations enable;
			# an administrator's disabling survives upgrades.
			if deb-systemd-helper --quiet was-enabled "$u"; then
				deb-systemd-helper enable "$u" >/dev/null || true
			else
				deb-systemd-helper update-state "$u" >/dev/null || true
			fi
		done
{{- end}}
	fi
	if [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
{{- if .Start}}
		if [ -z "$2" ]; then
			deb-systemd-invoke start {{.Start}} >/dev/null || true
{{- if .Restart}}
		else
			deb-systemd-invoke try-restart {{.Restart}} >/dev/null || true
{{- end}}
		fi
{{- end}}
	fi
fi
{{end}}exit 0
`),
	PreRemove: must("deb-prerm", scriptHeader+`{{if .Units}}
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	deb-systemd-invoke stop {{.Units}} >/dev/null || true
fi
{{end}}exit 0
`),
	PostRemove: must("deb-postrm", scriptHeader+common+shadow+`{{if .Units}}
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = purge ] && command -v deb-systemd-helper >/dev/null 2>&1; then
	for u in {{.Units}}; do
		deb-systemd-helper purge "$u" >/dev/null || true
		deb-systemd-helper unmask "$u" >/dev/null || true
	done
fi
{{end}}{{if .Core}}
if [ "$1" = purge ]; then
{{template "purge" .}}fi
{{end}}exit 0
`),
}

// RPM: $1 counts the installed instances (1 install, 2 upgrade; 0 on erase in the
// remove scripts). Units are preset on first installation and not started, as
// %systemd_post does; sendmail and friends are the mta alternative (Fedora's and
// RHEL's alternatives command; without it they are not linked). rpm has no purge:
// erase keeps the queue, the configuration and the users.
var rpmScripts = map[Script]*template.Template{
	PreInstall: must("rpm-pre", scriptHeader+common+shadow+`{{if .Core}}
{{template "accounts" .}}if [ "$1" = 1 ]; then
{{template "takeover" .}}fi
{{end}}exit 0
`),
	PostInstall: must("rpm-post", scriptHeader+common+`{{if .Core}}
{{template "configure" .}}{{if .Sendmail}}if command -v alternatives >/dev/null 2>&1; then
	alternatives --install /usr/sbin/sendmail mta {{.Bin}}/sendmail 30 \
		--slave /usr/lib/sendmail mta-sendmail {{.Bin}}/sendmail{{if .Mailq}} \
		--slave /usr/bin/mailq mta-mailq {{.Bin}}/mailq{{end}}
fi
{{end}}{{end}}{{if .Units}}
if [ "$1" = 1 ] && command -v systemctl >/dev/null 2>&1; then
	systemctl --no-reload preset {{.Units}} >/dev/null 2>&1 || true
fi
{{end}}exit 0
`),
	PreRemove: must("rpm-preun", scriptHeader+`{{if .Units}}
if [ "$1" = 0 ] && command -v systemctl >/dev/null 2>&1; then
	systemctl --no-reload disable --now {{.Units}} >/dev/null 2>&1 || true
fi
{{end}}{{if .Sendmail}}
if [ "$1" = 0 ] && command -v alternatives >/dev/null 2>&1; then
	alternatives --remove mta {{.Bin}}/sendmail || true
fi
{{end}}exit 0
`),
	PostRemove: must("rpm-postun", scriptHeader+`{{if .Units}}
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
{{- if .Restart}}
	if [ "$1" -ge 1 ]; then
		systemctl try-restart {{.Restart}} >/dev/null 2>&1 || true
	fi
{{- end}}
fi
{{end}}exit 0
`),
}

// Alpine: services are not started or enabled by packages (rc-update add is the
// administrator's). Upgrades run only the upgrade scripts.
var apkScripts = map[Script]*template.Template{
	PreInstall: must("apk-pre-install", scriptHeader+common+busybox+`{{if .Core}}
{{template "accounts" .}}{{template "takeover" .}}{{end}}exit 0
`),
	PreUpgrade: must("apk-pre-upgrade", scriptHeader+common+busybox+`{{if .Core}}
{{template "accounts" .}}{{end}}exit 0
`),
	PostInstall: must("apk-post-install", scriptHeader+common+`{{if .Core}}
{{template "apkdefaults" .}}{{template "configure" .}}{{end}}exit 0
`),
	PostUpgrade: must("apk-post-upgrade", scriptHeader+common+`{{if .Core}}
{{template "apkdefaults" .}}{{template "configure" .}}{{end}}exit 0
`),
}

var scriptTemplates = map[Format]map[Script]*template.Template{Deb: debScripts, RPM: rpmScripts, APK: apkScripts}
