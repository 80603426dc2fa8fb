package smtpd

import (
	"strings"
	"testing"
)

// TestRelayTricks tries the address forms that have made MTAs open relays: each must
// be accepted only when every domain it can be routed to is in rcpthosts.
func TestRelayTricks(t *testing.T) {
	cases := []struct {
		rcpt, params string
		want         string // reply code
	}{
		{"<u@example.org>", "", "250"},
		{"<U@EXAMPLE.ORG>", "", "250"},
		{"<u@far.example>", "", "553"},
		{"<u@evilexample.org>", "", "553"},
		{"<u@example.org.far.example>", "", "553"},
		{"<u@sub.example.org>", "", "553"}, // ".sub.example.org" covers only subdomains
		{"<u@a.sub.example.org>", "", "250"},
		{"<u%far.example@example.org>", "", "553"},
		{"<u%a.sub.example.org@example.org>", "", "250"},
		{"<u%@example.org>", "", "553"},
		{"<far.example!u@example.org>", "", "553"},
		{"<a.sub.example.org!u@example.org>", "", "250"},
		{"<\"u@far.example\"@example.org>", "", "553"},
		{"<\"u%far.example\"@example.org>", "", "553"},
		{"<\"far.example!u\"@example.org>", "", "553"},
		{"<\"@far.example:u\"@example.org>", "", "553"},
		{"<\"u\\@far.example\"@example.org>", "", "553"},
		{"<\"john smith\"@example.org>", "", "250"},
		{"<@example.org:u@far.example>", "", "553"},
		{"<@far.example,@example.org:u@example.org>", "", "250"}, // route ignored: delivered to u@example.org
		{"<@far.example:u@far.example>", "", "553"},
		{"<u@far.example@example.org>", "", "555"},
		{"<u@example.org%far.example>", "", "555"},
		{"<u@example.org.>", "", "555"},
		{"<u@example.org:25>", "", "555"},
		{"<u\\@far.example@example.org>", "", "555"},
		{"<u@example.org>@far.example", "", "555"},
		{"<<u@far.example>>", "", "555"},
		{"<u@example.org", "", "555"},
		{"<>", "", "555"},
		{"<u@ex\x01ample.org>", "", "555"},
		{"<\"u\x00\"@example.org>", "", "555"},
		{"<u@[192.0.2.99]>", "", "553"},
		{"<u@[127.0.0.1]>", "", "250"}, // our own address: localiphost
		{"<u@[IPv6:::1]>", "", "250"},
		{"<u@[ipv6:0:0:0:0:0:0:0:1]>", "", "250"},
		{"<u@[IPv6:2001:db8::1]>", "", "553"},
		{"<u@[IPv6:::ffff:127.0.0.1]>", "", "553"},
		{"<u@[127.0.0.1%eth0]>", "", "555"},
		{"<u@[IPv6:fe80::1%eth0]>", "", "555"},
		{"<u@[tag:whatever]>", "", "555"},
		{"<u@[300.1.1.1]>", "", "555"},
		{"<u@192.0.2.1>", "", "553"},
		{"<postmaster>", "", "250"},
		{"<Postmaster>", "", "250"},
		{"<far.example!u>", "", "553"},
		{"<u%far.example>", "", "553"},
		{"<\"u@far.example\">", "", "553"},
		{"u@example.org", "", "250"},
		{"u@far.example", "", "553"},
		{" <u@example.org>", "", "250"},
		{"<u@example.org> NOTIFY=NEVER", "", "555"},
		{"<u@xn--bcher-kva.example>", "", "250"},
		{"<u@bücher.example>", "", "553"}, // without SMTPUTF8
		{"<u@bücher.example>", " SMTPUTF8", "250"},
		{"<ü@example.org>", " SMTPUTF8", "250"},
		{"<ü@example.org>", "", "553"},
		{"<u@b\xfccher.example>", " SMTPUTF8", "553"}, // not UTF-8
		{"<u%bücher.example@example.org>", " SMTPUTF8", "250"},
		{"<u@far.example>", " SMTPUTF8", "553"},
	}
	for _, c := range cases {
		out := dialog(t, testConfig(&memQueue{}), "EHLO c\r\nMAIL FROM:<a@x.example>"+c.params+"\r\nRCPT TO:"+c.rcpt+"\r\n")
		r := replies(out)
		last := r[len(r)-1]
		if r[len(r)-2] != "250 2.1.0 ok" {
			t.Errorf("%q: MAIL refused: %s", c.rcpt, out)
			continue
		}
		if !strings.HasPrefix(last, c.want+" ") {
			t.Errorf("RCPT TO:%q%s: got %q, want %s", c.rcpt, c.params, last, c.want)
		}
	}
}

// TestRelayQueuedAddress checks that what is queued is the address the relay decision
// was taken on.
func TestRelayQueuedAddress(t *testing.T) {
	q := &memQueue{}
	out := dialog(t, testConfig(q), "MAIL FROM:<@a.example:x@y.example> SMTPUTF8\r\n"+
		"RCPT TO:<\"john smith\"@example.org>\r\nRCPT TO:<@far.example:u@example.org>\r\nRCPT TO:<u@[127.0.0.1]>\r\nRCPT TO:<ü@bücher.example>\r\nDATA\r\n.\r\n")
	qs := q.all()
	if len(qs) != 1 {
		t.Fatalf("not queued:\n%s", out)
	}
	if qs[0].from != "x@y.example" || strings.Join(qs[0].rcpts, "|") != "john smith@example.org|u@example.org|u@example.org|ü@bücher.example" {
		t.Errorf("envelope %q %q", qs[0].from, qs[0].rcpts)
	}
	if !strings.Contains(qs[0].data, " with UTF8SMTP; ") {
		t.Errorf("Received line: %q", qs[0].data)
	}
}

func TestNoRcptHostsAcceptsNothing(t *testing.T) {
	cfg := testConfig(&memQueue{})
	cfg.RcptHosts = nil
	out := dialog(t, cfg, "MAIL FROM:<a@x.example>\r\nRCPT TO:<u@example.org>\r\n")
	mustContain(t, out, "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)")
}

func TestMailParameters(t *testing.T) {
	for arg, want := range map[string]string{
		"<a@x.example>":                 "250",
		"<a@x.example> BODY=7BIT":       "250",
		"<a@x.example> body=8bitmime":   "250",
		"<a@x.example> BODY=BINARYMIME": "501",
		"<a@x.example> SIZE=abc":        "501",
		"<a@x.example> SIZE=-1":         "501",
		"<a@x.example> SMTPUTF8=yes":    "501",
		"<a@x.example> RET=FULL":        "555",
		"<a@x.example>SIZE=1":           "555",
		"<ü@x.example>":                 "553",
		"<>":                            "250",
		"<> SIZE=10":                    "250",
		":<a@x.example>":                "555",
	} {
		out := dialog(t, testConfig(&memQueue{}), "MAIL FROM:"+arg+"\r\n")
		r := replies(out)
		if !strings.HasPrefix(r[len(r)-1], want+" ") {
			t.Errorf("MAIL FROM:%s: %q, want %s", arg, r[len(r)-1], want)
		}
	}
	out := dialog(t, testConfig(&memQueue{}), "MAIL TO:<a@b>\r\n")
	mustContain(t, out, "501 syntax error in parameters (#5.5.4)")
}

func TestRcptHostsULabels(t *testing.T) {
	cfg := testConfig(&memQueue{})
	cfg.RcptHosts = func(d string) (bool, error) { return d == "münchen.example", nil }
	out := dialog(t, cfg, "MAIL FROM:<a@x.example> SMTPUTF8\r\nRCPT TO:<u@xn--mnchen-3ya.example>\r\nRCPT TO:<u@MÜNCHEN.example>\r\nRCPT TO:<u@munchen.example>\r\n")
	r := replies(out)
	if len(r) != 5 || r[2] != "250 ok" || r[3] != "250 ok" || !strings.HasPrefix(r[4], "553 ") {
		t.Errorf("replies %q", r)
	}
}
