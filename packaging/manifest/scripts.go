package manifest

import (
	"bytes"
	"fmt"
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

// The pre-install scripts create the groups and users before the files are unpacked,
// because all three formats store owners by name. Each step checks first, so reinstalls
// and upgrades change nothing, and an administrator's existing qmail users (with their
// own uids) are kept as they are.
var preinstall = map[Format]*template.Template{
	// Debian and RPM distributions both have shadow's groupadd/useradd (Debian: package
	// passwd, a Pre-Depends); getent also sees users from NSS sources such as LDAP.
	Deb: template.Must(template.New("deb").Parse(shadowScript)),
	RPM: template.Must(template.New("rpm").Parse(shadowScript)),
	// Alpine has busybox's addgroup/adduser and no getent by default.
	APK: template.Must(template.New("apk").Parse(busyboxScript)),
}

const header = `#!/bin/sh
# notqmail pre-install: create qmail's groups and users when they do not exist yet.
set -e
nologin=/usr/sbin/nologin
[ -x "$nologin" ] || nologin=/sbin/nologin
[ -x "$nologin" ] || nologin=/bin/false
`

const shadowScript = header + `{{range .Groups}}
getent group {{.}} >/dev/null 2>&1 || groupadd -r {{.}}{{end}}
{{range .Accounts}}
getent passwd {{.Name}} >/dev/null 2>&1 || useradd -r -M -g {{.Group}} -d {{.Home}} -s "$nologin" -c "qmail {{.Name}}" {{.Name}}{{end}}
exit 0
`

const busyboxScript = header + `{{range .Groups}}
grep -q '^{{.}}:' /etc/group || addgroup -S {{.}}{{end}}
{{range .Accounts}}
id -u {{.Name}} >/dev/null 2>&1 || adduser -S -D -H -G {{.Group}} -h {{.Home}} -s "$nologin" -g "qmail {{.Name}}" {{.Name}}{{end}}
exit 0
`

// PreInstall returns the pre-install script for a format.
func PreInstall(f Format) ([]byte, error) {
	t, ok := preinstall[f]
	if !ok {
		return nil, fmt.Errorf("no pre-install script for format %q", f)
	}
	var b bytes.Buffer
	err := t.Execute(&b, struct {
		Groups   []string
		Accounts []Account
	}{ids.Groups, Accounts})
	return b.Bytes(), err
}
