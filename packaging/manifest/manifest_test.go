package manifest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/notqmail/notqmail/packaging/manpage"
	"github.com/notqmail/notqmail/src/ids"
	"github.com/notqmail/notqmail/src/testpeer"
)

func pages(names ...string) []manpage.Page {
	var p []manpage.Page
	for _, n := range names {
		p = append(p, manpage.Page{Name: n, Section: "8"})
	}
	return p
}

func TestNewLaysOutProgramsAndLinks(t *testing.T) {
	m, err := New(Inputs{
		Programs:   []string{"qmail-showctl", "sendmail", "mailq"},
		Standalone: []string{"qmail-queue"},
		Pages:      pages("notqmail", "qmail-showctl", "sendmail", "mailq", "qmail-queue"),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Entry{
		"/usr/lib/notqmail/bin/notqmail":       {Kind: File, Mode: 0o755, Owner: "root", Group: "qmail", Origin: Binary, Source: "notqmail"},
		"/usr/lib/notqmail/bin/qmail-showctl":  {Kind: Symlink, Source: "notqmail"},
		"/usr/lib/notqmail/bin/qmail-queue":    {Kind: File, Mode: 0o4711, Owner: "qmailq", Group: "qmail", Origin: Binary, Source: "qmail-queue"},
		"/var/qmail/bin":                       {Kind: Symlink, Source: "/usr/lib/notqmail/bin"},
		"/var/qmail/control":                   {Kind: Symlink, Source: "/etc/qmail"},
		"/var/qmail/alias":                     {Kind: Dir, Mode: 0o2755, Owner: "alias", Group: "qmail"},
		"/etc/qmail/defaultdelivery":           {Kind: Config, Mode: 0o644, Owner: "root", Group: "root", Origin: Etc, Source: "defaultdelivery"},
		"/usr/sbin/sendmail":                   {Kind: Symlink, Source: "../lib/notqmail/bin/sendmail"},
		"/usr/lib/sendmail":                    {Kind: Symlink, Source: "../sbin/sendmail"},
		"/usr/bin/mailq":                       {Kind: Symlink, Source: "../lib/notqmail/bin/mailq"},
		"/usr/share/man/man8/qmail-queue.8.gz": {Kind: Doc, Mode: 0o644, Origin: ManPage, Source: "man8/qmail-queue.8.gz"},
	}
	for p, w := range want {
		e, ok := m.Lookup(p)
		if !ok {
			t.Errorf("%s missing", p)
			continue
		}
		if e.Kind != w.Kind || e.Source != w.Source || (w.Mode != 0 && e.Mode != w.Mode) ||
			(w.Owner != "" && (e.Owner != w.Owner || e.Group != w.Group)) || e.Origin != w.Origin {
			t.Errorf("%s = %+v, want %+v", p, e, w)
		}
	}
	// The links resolve inside the layout: sendmail reaches the multi-call binary.
	if e, _ := m.Lookup("/usr/lib/notqmail/bin/sendmail"); e.Kind != Symlink || e.Source != MultiCall {
		t.Errorf("bin/sendmail = %+v", e)
	}
	for i := 1; i < len(m.Entries); i++ {
		if m.Entries[i-1].Path >= m.Entries[i].Path {
			t.Fatalf("entries not sorted at %s", m.Entries[i].Path)
		}
	}
}

func TestNewLeavesOutWhatIsNotBuilt(t *testing.T) {
	m, err := New(Inputs{Programs: []string{"qmail-showctl"}, Pages: pages("qmail-showctl")})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/usr/sbin/sendmail", "/usr/lib/sendmail", "/usr/bin/mailq", "/usr/lib/notqmail/bin/qmail-queue"} {
		if _, ok := m.Lookup(p); ok {
			t.Errorf("%s installed though its program was not built", p)
		}
	}
}

func TestNewRefusesInconsistentInputs(t *testing.T) {
	cases := map[string]Inputs{
		"unknown standalone": {Standalone: []string{"qmail-frob"}, Pages: pages("qmail-frob")},
		"served twice":       {Programs: []string{"qmail-queue"}, Standalone: []string{"qmail-queue"}, Pages: pages("qmail-queue")},
		"bad name":           {Programs: []string{"../../etc/passwd"}},
		"duplicate":          {Programs: []string{"x", "x"}, Pages: pages("x")},
	}
	for name, in := range cases {
		if _, err := New(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	m, err := New(Inputs{Programs: []string{"qmail-showctl", "qmail-send"}, Standalone: []string{"qmail-queue"}, Pages: pages("qmail-showctl")})
	if err != nil || strings.Join(m.Missing, " ") != "qmail-queue qmail-send" {
		t.Errorf("programs without a man page: Missing = %q, err %v", m.Missing, err)
	}
}

func TestAccountsCoverQmailUsers(t *testing.T) {
	if len(Accounts) != len(ids.Users) {
		t.Fatalf("%d accounts for %d qmail users", len(Accounts), len(ids.Users))
	}
	for i, u := range ids.Users {
		if Accounts[i].Name != u {
			t.Errorf("account %d is %s, want %s (conf-users order)", i, Accounts[i].Name, u)
		}
	}
}

func TestConfigRoundTripsThroughNFPM(t *testing.T) {
	m, err := New(Inputs{Programs: []string{"qmail-showctl"}, Standalone: []string{"qmail-queue"}, Pages: pages("qmail-showctl", "qmail-queue")})
	if err != nil {
		t.Fatal(err)
	}
	src := Sources{Bin: "/b", Man: "/m", Etc: "/e", Gen: "/g"}
	cfg, err := m.Config(Core, src, Meta{Maintainer: DefaultMaintainer, MTime: time.Unix(1700000000, 0).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	y, err := YAML(cfg)
	if err != nil {
		t.Fatal(err)
	}
	back, err := nfpm.Parse(bytes.NewReader(y))
	if err != nil {
		t.Fatalf("nfpm cannot read the generated config: %v\n%s", err, y)
	}
	want := 0
	for _, e := range m.Entries {
		switch {
		case e.Pkg() != Core:
		case e.Kind == Doc && len(e.Formats) == 0:
			want += len(Formats) // the rpm's copy is marked %doc
		default:
			want += max(1, len(e.Formats))
		}
	}
	if len(back.Contents) != want {
		t.Fatalf("%d contents after the round trip, want %d", len(back.Contents), want)
	}
	for _, c := range back.Contents {
		if c.Destination == "/usr/lib/notqmail/bin/qmail-queue" {
			if c.FileInfo.Mode != 0o4711 || c.FileInfo.Owner != "qmailq" || c.Source != "/b/qmail-queue" {
				t.Errorf("qmail-queue content = %+v %+v", c, c.FileInfo)
			}
		}
	}
	deb, err := back.Get("deb")
	if err != nil {
		t.Fatal(err)
	}
	if deb.Scripts.PreInstall != "/g/notqmail.preinstall.deb" || len(deb.Deb.Predepends) != 1 {
		t.Errorf("deb override lost: %+v", deb.Scripts)
	}
}

// A real deb from the manifest carries the owners and modes, setuid included.
func TestPackageDebKeepsOwnersAndModes(t *testing.T) {
	dpkgDeb := testpeer.Need(t, "dpkg-deb")
	dir := t.TempDir()
	src := Sources{Bin: filepath.Join(dir, "bin"), Man: filepath.Join(dir, "man"), Etc: "../etc", Gen: filepath.Join(dir, "gen")}
	for _, p := range []string{"bin/notqmail", "bin/qmail-queue", "man/man8/qmail-queue.8.gz", "man/man8/notqmail.8.gz"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mtime := time.Unix(1700000000, 0).UTC()
	m, err := New(Inputs{Standalone: []string{"qmail-queue"}, Pages: []manpage.Page{{Name: "qmail-queue", Section: "8"}, {Name: "notqmail", Section: "8"}}})
	if err != nil {
		t.Fatal(err)
	}
	meta := Meta{Maintainer: DefaultMaintainer, MTime: mtime, Version: Version{Base: "0.0.0", Meta: "git1.abc1234"}}
	if err := m.WriteGenerated(src.Gen, meta, []byte("## Unreleased\n- a change\n")); err != nil {
		t.Fatal(err)
	}
	cfg, err := m.Config(Core, src, meta)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	name, err := Package(cfg, Deb, "amd64", Version{Base: "0.0.0", Meta: "git1.abc1234"}, &b)
	if err != nil {
		t.Fatal(err)
	}
	if name != "notqmail_0.0.0+git1.abc1234-1_amd64.deb" {
		t.Errorf("file name %q", name)
	}
	p := filepath.Join(dir, name)
	os.WriteFile(p, b.Bytes(), 0o644)
	out, err := exec.Command(dpkgDeb, "-c", p).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v\n%s", err, out)
	}
	for _, want := range []string{
		"-rws--x--x qmailq/qmail",
		"./usr/lib/notqmail/bin/qmail-queue",
		"drwxr-sr-x alias/qmail",
		"./var/qmail/bin -> /usr/lib/notqmail/bin",
		"-rw-r--r-- root/root",
		"./etc/qmail/defaultdelivery",
		"2023-11-14",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("dpkg-deb -c lacks %q:\n%s", want, out)
		}
	}
	info, err := exec.Command(dpkgDeb, "-I", p).CombinedOutput()
	if err != nil || !strings.Contains(string(info), "Pre-Depends: passwd") || !strings.Contains(string(info), "preinst") {
		t.Errorf("dpkg-deb -I: %v\n%s", err, info)
	}
	if bytes.Contains(info, []byte("mail-transport-agent")) {
		t.Errorf("claims to be an MTA without a sendmail program:\n%s", info)
	}
	conf, err := exec.Command(dpkgDeb, "-f", p, "Version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(conf)) != "0.0.0+git1.abc1234-1" {
		t.Errorf("Version = %q, %v", conf, err)
	}
}
