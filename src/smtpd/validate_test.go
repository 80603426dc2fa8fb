package smtpd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notqmail/notqmail/src/send"
	"github.com/notqmail/notqmail/src/users"
)

// validatorFixture builds users/cdb, homes and .qmail files for:
//
//	example.org (local)        alice (users/assign, with .qmail-list and .qmail-ext-default),
//	                           bob (passwd, no .qmail files), the alias user with .qmail-postmaster
//	virt.example (virtual)     prepend "v": v-sales via users/assign wildcard +v-
//	relay.example              not local: never checked
func validatorFixture(t *testing.T) *Validator {
	t.Helper()
	dir := t.TempDir()
	mk := func(p, data string) {
		if err := os.MkdirAll(filepath.Dir(p), 0755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0644); err != nil {
			t.Fatal(err)
		}
	}
	alice, bob, alias, vhome := filepath.Join(dir, "alice"), filepath.Join(dir, "bob"), filepath.Join(dir, "alias"), filepath.Join(dir, "vhome")
	mk(filepath.Join(alice, ".qmail-list"), "./Maildir/\n")
	mk(filepath.Join(alice, ".qmail-ext-default"), "./Maildir/\n")
	mk(filepath.Join(bob, ".keep"), "")
	mk(filepath.Join(alias, ".qmail-postmaster"), "&alice@example.org\n")
	mk(filepath.Join(vhome, ".qmail-sales"), "./Maildir/\n")
	assign := "=alice:alice:1000:1000:" + alice + ":::\n+alice-:alice:1000:1000:" + alice + ":-::\n+v-:vuser:1001:1001:" + vhome + ":-::\n.\n"
	mk(filepath.Join(dir, "users", "assign"), assign)
	if err := users.NewU(filepath.Join(dir, "users", "assign"), filepath.Join(dir, "users", "cdb")); err != nil {
		t.Fatal(err)
	}
	return &Validator{
		Domains: []string{"example.org", ".virt.example", "virt.example"},
		Rewrite: &send.Rewriter{
			EnvNoAtHost: "example.org",
			Locals:      map[string]bool{"example.org": true, "unchecked.example": true},
			VirtualDoms: map[string]string{"virt.example": "v", "sub.virt.example": ""},
		},
		UsersCDB:  filepath.Join(dir, "users", "cdb"),
		AliasHome: alias,
		Getpw: func(name string) (int, string, bool) {
			if name == "bob" {
				return 1002, bob, true
			}
			return 0, "", false
		},
	}
}

func TestValidator(t *testing.T) {
	v := validatorFixture(t)
	for addr, ok := range map[string]bool{
		"alice@example.org":            true,
		"ALICE@Example.ORG":            true,
		"alice-list@example.org":       true,
		"alice-ext-foo@example.org":    true,
		"alice-nolist@example.org":     false,
		"bob@example.org":              true,
		"Bob@example.org":              true,
		"bob-anything@example.org":     false, // bob has no .qmail-default
		"postmaster@example.org":       true,
		"postmaster":                   true, // envnoathost
		"nobody-here@example.org":      false,
		"sales@virt.example":           true,
		"purchasing@virt.example":      false,
		"x@sub.virt.example":           true, // a virtualdomains exception: delivered remotely
		"anyone@unchecked.example":     true, // local but not in validrcptdomains
		"anyone@relay.example":         true,
		"../../etc/passwd@example.org": false,
	} {
		err := v.Check(addr)
		if (err == nil) != ok {
			t.Errorf("%s: %v, want deliverable=%v", addr, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), "550 sorry, no mailbox here by that name (#5.1.1)") {
			t.Errorf("%s: reply %v", addr, err)
		}
	}
}

func TestValidatorInSession(t *testing.T) {
	q := &memQueue{}
	cfg := testConfig(q)
	cfg.CheckRcpt = validatorFixture(t).Check
	out := dialog(t, cfg, "EHLO x\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<nosuch@example.org>\r\nDATA\r\nx\r\n.\r\n")
	mustContain(t, out, "250 2.1.5 ok\r\n550 5.1.1 sorry, no mailbox here by that name\r\n354")
	if qs := q.all(); len(qs) != 1 || strings.Join(qs[0].rcpts, ",") != "alice@example.org" {
		t.Errorf("queued %+v", qs)
	}
}
