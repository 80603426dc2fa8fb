package smtpd

import (
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzAuth feeds arbitrary client input into the AUTH exchange (after EHLO, with
// AUTH allowed on plain text): no panic, only well-formed replies, and no relaying
// unless the server said 235 first.
func FuzzAuth(f *testing.F) {
	for _, s := range []string{
		"PLAIN AGFsaWNlAHMzY3JldA==\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@far.example>\r\nDATA\r\nx\r\n.\r\n",
		"PLAIN\r\nAGFsaWNlAHdyb25n\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@far.example>\r\nRCPT TO:<y@example.org>\r\nDATA\r\nx\r\n.\r\n",
		"LOGIN\r\nYWxpY2U=\r\nczNjcmV0\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@far.example>\r\n",
		"LOGIN YWxpY2U=\r\n*\r\n", "PLAIN =\r\n", "PLAIN *\r\n", "login\r\n\r\n\r\n", "PLAIN YWxpY2UAYWxpY2UAczNjcmV0\r\n",
		"PLAIN Ym9iAGFsaWNlAHMzY3JldA==\r\n", "CRAM-MD5\r\n", "PLAIN AGFsaWNlAHMzY3JldA\r\n", "LOGIN\r\n" + strings.Repeat("A", 3000) + "\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		q := &memQueue{}
		cfg := testConfig(q)
		cfg.Auth, cfg.AuthWithoutTLS = acceptAlice, true
		out := dialog(t, cfg, "EHLO x\r\nAUTH "+in)
		authed := false
		for _, l := range strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n") {
			if len(l) < 4 || l[0] < '2' || l[0] > '5' || (l[3] != ' ' && l[3] != '-') {
				t.Fatalf("bad reply line %q in %q", l, out)
			}
			if strings.HasPrefix(l, "235 ") {
				authed = true
			}
		}
		for _, m := range q.all() {
			for _, r := range m.rcpts {
				if strings.HasSuffix(r, "@far.example") && !authed {
					t.Fatalf("relayed to %q without AUTH", r)
				}
			}
		}
	})
}

// FuzzParsePlain: any PLAIN response is decoded or refused without panic; what is
// accepted is exactly what a client encoded.
func FuzzParsePlain(f *testing.F) {
	for _, s := range []string{"AGFsaWNlAHMzY3JldA==", "YWxpY2UAYWxpY2UAczNjcmV0", "Ym9iAGFsaWNlAHMzY3JldA==", "", "====", "AAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, resp string) {
		user, pass, err := parsePlain(resp)
		if err != nil {
			return
		}
		if user == "" || strings.ContainsRune(user, 0) || strings.ContainsRune(pass, 0) {
			t.Fatalf("accepted %q %q from %q", user, pass, resp)
		}
		u2, p2, err := parsePlain(base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass)))
		if err != nil || u2 != user || p2 != pass {
			t.Fatalf("round trip of %q %q: %q %q %v", user, pass, u2, p2, err)
		}
	})
}
