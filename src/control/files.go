package control

import (
	"sort"
	"strings"
)

// FileInfo describes a control file the project reads.
type FileInfo struct {
	Name    string
	Default string // what applies when the file is missing, in words
	UsedBy  string // the programs that read it
	Meaning string
}

// Files lists every control file the project reads. A program that reads a new file adds
// it here (Dir panics on an unlisted name), and qmail-showctl reports from this table.
var Files = []FileInfo{
	{"me", "none (required)", "all", "fully qualified name of this host"},
	{"badmailfrom", "none", "qmail-smtpd", "envelope senders (or @domains) refused"},
	{"badrcptto", "none", "qmail-smtpd", "envelope recipients (or @domains) refused"},
	{"bouncefrom", "MAILER-DAEMON", "qmail-send", "user part of the bounce sender"},
	{"bouncehost", "me", "qmail-send", "host part of the bounce sender"},
	{"concurrencylocal", "10", "qmail-send", "simultaneous local deliveries (0 holds local mail)"},
	{"concurrencyremote", "20", "qmail-send", "simultaneous remote deliveries (0 holds remote mail)"},
	{"databytes", "0 (no limit)", "qmail-smtpd, qmail-qmtpd, qmail-qmqpd", "largest message accepted, in bytes"},
	{"defaultdelivery", "./Maildir/ (packages) or qmail-start's argument", "qmail-start", "delivery for users without a .qmail file"},
	{"defaultdomain", "me", "qmail-inject", "domain appended to host names without a dot"},
	{"defaulthost", "me", "qmail-inject", "host appended to addresses without one"},
	{"doublebouncehost", "me", "qmail-send", "host of the double-bounce recipient"},
	{"doublebounceto", "postmaster", "qmail-send", "user who receives double bounces"},
	{"envnoathost", "me", "qmail-send", "host appended to envelope recipients without @"},
	{"helohost", "me", "qmail-remote", "name sent in HELO/EHLO"},
	{"idhost", "me", "qmail-inject", "host part of generated Message-IDs"},
	{"localiphost", "me", "qmail-smtpd", "name that replaces local IP address literals"},
	{"locals", "me", "qmail-send", "domains delivered locally"},
	{"morercpthosts", "none", "qmail-newmrh", "more rcpthosts, compiled into morercpthosts.cdb"},
	{"morercpthosts.cdb", "none", "qmail-smtpd, qmail-qmtpd", "compiled morercpthosts"},
	{"percenthack", "none", "qmail-send", "domains where user%host@domain becomes user@host"},
	{"plusdomain", "me", "qmail-inject", "domain appended to host names ending in +"},
	{"qmtproutes", "none", "qmail-remote", "domain:relay[:port] delivered by QMTP (port 209); an empty relay means MX"},
	{"qmqpservers", "none", "qmail-qmqpc", "QMQP servers to hand mail to: IP, or IP:port / [IPv6]:port"},
	{"queuelifetime", "604800", "qmail-send", "seconds a message may stay in the queue"},
	{"rcpthosts", "none (accepts no recipients unless RELAYCLIENT is set)", "qmail-smtpd, qmail-qmtpd", "domains accepted as recipients"},
	{"smtpgreeting", "me", "qmail-smtpd", "220 greeting; the first word should be the host name"},
	{"smtpplugins", "none (no plugins)", "qmail-smtpd", "qmail-spp plugins by stage: [connection] [helo] [mail] [rcpt] [data] [auth]"},
	{"smtproutes", "none", "qmail-remote", "domain:relay[:port] routes; an empty relay means MX"},
	{"timeoutconnect", "60", "qmail-remote", "seconds to wait for a connection"},
	{"timeoutremote", "1200", "qmail-remote", "seconds to wait for a remote server"},
	{"timeoutsmtpd", "1200", "qmail-smtpd", "seconds to wait for an SMTP client"},
	{"outgoingip", "none (the system chooses)", "qmail-remote", "source address: ADDR[,ADDR] default, or domain:ADDR[,ADDR]"},
	{"tlsdestinations", "none (opportunistic TLS everywhere)", "qmail-remote", "domain:policy, policy may, none, encrypt, verify or sha256=HEX"},
	{"clientcert.pem", "none", "qmail-remote", "TLS client certificate and key (PEM) offered to servers"},
	{"servercert.pem", "none (no STARTTLS; implicit TLS refuses to start)", "qmail-smtpd", "default TLS server certificate chain and private key (PEM)"},
	{"tls", "none", "qmail-smtpd", "directory of <domain>.pem and *.<domain>.pem certificates chosen by SNI"},
	{"authwithouttls", "0 (AUTH only after STARTTLS or on implicit TLS)", "qmail-smtpd", "1 offers SMTP AUTH on unencrypted connections too"},
	{"passwords", "none (every password refused)", "qmail-chkpw, qmail-chkpw-passwd", "name:bcrypt-hash[:uid:gid:home] lines, managed with qmail-chkpw-passwd"},
	{"passwords.lock", "none", "qmail-chkpw-passwd", "lock serializing changes to passwords"},
	{"validrcptdomains", "none (no validation)", "qmail-smtpd", "domains whose local recipients must exist at RCPT time (.dom wildcards, * for all)"},
	{"virtualdomains", "none", "qmail-send", "user@domain:prepend or domain:prepend rewrites"},
}

var byName = func() map[string]FileInfo {
	m := make(map[string]FileInfo, len(Files))
	for _, f := range Files {
		m[f.Name] = f
	}
	return m
}()

func lookup(name string) (FileInfo, bool) {
	f, ok := byName[name]
	return f, ok
}

// Known reports whether name is a control file the project reads.
func Known(name string) bool {
	_, ok := byName[name]
	return ok
}

// Names returns the known control file names in order.
func Names() []string {
	n := make([]string, 0, len(Files))
	for _, f := range Files {
		n = append(n, f.Name)
	}
	sort.Strings(n)
	return n
}

// secret lists the control files whose contents must never be shown (password hashes,
// private keys); names ending in .pem or .key are secret too.
var secret = map[string]bool{
	"passwords":      true,
	"passwords.lock": true,
	"tls":            true,
}

// Secret reports whether a control file holds material that reports and logs must not
// print: keys, certificates with their keys, password hashes.
func Secret(name string) bool {
	return secret[name] || strings.HasSuffix(name, ".pem") || strings.HasSuffix(name, ".key")
}
