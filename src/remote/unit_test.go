package remote

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/dnsresolve"
	"github.com/notqmail/notqmail/src/tcpto"
)

func TestReadReply(t *testing.T) {
	r := bufio.NewReader(strings.NewReader("250-mx.example Hello\r\n250-PIPELINING\r\n250 8BITMIME\r\n220 next\r\n"))
	rep, err := readReply(r)
	if err != nil || rep.Code != 250 || len(rep.Lines) != 3 {
		t.Fatalf("%+v %v", rep, err)
	}
	if rep.Text() != "250-mx.example Hello\n250-PIPELINING\n250 8BITMIME\n" {
		t.Errorf("text %q", rep.Text())
	}
	if rep, _ := readReply(r); rep.Code != 220 {
		t.Errorf("second reply %+v", rep)
	}

	for _, bad := range []string{
		"hello\r\n",
		"25\r\n",
		"250+x\r\n",
		"250-a\r\n550 b\r\n",
		"999 x\r\n",
		"250-a\r\n", // EOF inside a reply
		"",
	} {
		if _, err := readReply(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := readReply(bufio.NewReader(strings.NewReader("250-a\r\n"))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("EOF mid-reply: %v", err)
	}
	// A bare code is a reply.
	if rep, err := readReply(bufio.NewReader(strings.NewReader("250\n"))); err != nil || rep.Code != 250 {
		t.Errorf("bare code: %+v %v", rep, err)
	}
}

func TestReadReplyBounded(t *testing.T) {
	// An endless continuation is cut off, not buffered.
	endless := io.MultiReader(strings.NewReader("250-"+strings.Repeat("x", 10)+"\r\n"), &repeat{line: []byte("250-more text here\r\n")})
	if _, err := readReply(bufio.NewReader(endless)); !errors.Is(err, errProtocol) {
		t.Fatalf("endless reply: %v", err)
	}
	// An endless line too.
	if _, err := readReply(bufio.NewReader(&repeat{line: []byte("2")})); !errors.Is(err, errProtocol) {
		t.Fatalf("endless line: %v", err)
	}
	// A long but finite reply keeps at most maxReplyText bytes of text.
	long := strings.Repeat("250-"+strings.Repeat("y", 100)+"\r\n", 200) + "250 end\r\n"
	rep, err := readReply(bufio.NewReader(strings.NewReader(long)))
	if err != nil || len(rep.Text()) > maxReplyText+200 {
		t.Fatalf("long reply: %d bytes kept, %v", len(rep.Text()), err)
	}
	// NULs and control characters do not reach the report.
	rep, _ = readReply(bufio.NewReader(strings.NewReader("550 a\x00b\x1bc\r\n")))
	if rep.Text() != "550 a?b?c\n" {
		t.Errorf("text %q", rep.Text())
	}
}

type repeat struct{ line []byte }

func (r *repeat) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], r.line)
	}
	return n, nil
}

func TestEnhanced(t *testing.T) {
	for line, want := range map[string]string{
		"550 5.1.1 no such user": "5.1.1",
		"450 4.2.0 later":        "4.2.0",
		"550 4.1.1 mismatch":     "",
		"550 no code":            "",
		"250 2.0.0":              "2.0.0",
	} {
		rep, _ := readReply(bufio.NewReader(strings.NewReader(line + "\r\n")))
		if got := rep.Enhanced(); got != want {
			t.Errorf("%q: %q, want %q", line, got, want)
		}
	}
}

func TestWriteData(t *testing.T) {
	for in, want := range map[string]string{
		"a\nb\n":          "a\r\nb\r\n.\r\n",
		"a\r\nb\r\n":      "a\r\nb\r\n.\r\n",
		".\n..\n.x\n":     "..\r\n...\r\n..x\r\n.\r\n",
		"no newline":      "no newline\r\n.\r\n",
		"cr\ronly\r":      "cr\r\nonly\r\n.\r\n",
		"x\n.":            "x\r\n..\r\n.\r\n",
		"":                ".\r\n",
		"a\r\r\nb":        "a\r\n\r\nb\r\n.\r\n",
		"mid.dot\n. lead": "mid.dot\r\n.. lead\r\n.\r\n",
	} {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		if err := writeData(w, strings.NewReader(in)); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		if b.String() != want {
			t.Errorf("%q -> %q, want %q", in, b.String(), want)
		}
	}
}

func TestPrepareMessage(t *testing.T) {
	m, err := PrepareMessage(strings.NewReader("Subject: x\n\nbody\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Size != int64(len("Subject: x\r\n\r\nbody\r\n")) || m.EightBit || m.UTF8Header {
		t.Errorf("%+v", m)
	}
	m2, _ := PrepareMessage(strings.NewReader("Subject: Gr\xc3\xbc\xc3\x9fe\n\nx\n"))
	if !m2.EightBit || !m2.UTF8Header {
		t.Errorf("UTF-8 header: %+v", m2)
	}
	m3, _ := PrepareMessage(strings.NewReader("Subject: caf\xe9 ok\n\nbody \xc3\xa9\n"))
	if !m3.EightBit || m3.UTF8Header {
		t.Errorf("latin-1 header, UTF-8 body: %+v", m3)
	}

	// A regular file is used in place, from its current offset, and re-read per attempt.
	p := filepath.Join(t.TempDir(), "msg")
	os.WriteFile(p, []byte("skip|a\nb\n"), 0644)
	f, _ := os.Open(p)
	defer f.Close()
	f.Seek(5, io.SeekStart)
	m4, err := PrepareMessage(f)
	if err != nil || m4.tmp != nil || m4.Size != 6 {
		t.Fatalf("file: %+v %v", m4, err)
	}
	for i := 0; i < 2; i++ {
		r, _ := m4.Reader()
		b, _ := io.ReadAll(r)
		if string(b) != "a\nb\n" {
			t.Fatalf("read %d: %q", i, b)
		}
	}
}

func TestQuoteAddr(t *testing.T) {
	for in, want := range map[string]string{
		"":                    "",
		"user@example.com":    "user@example.com",
		"a.b+c@example.com":   "a.b+c@example.com",
		"a b@example.com":     `"a b"@example.com`,
		`we"ird\@example.com`: `"we\"ird\\"@example.com`,
		".lead@example.com":   `".lead"@example.com`,
		"a@b@example.com":     `"a@b"@example.com`,
		"jürgen@example.com":  "jürgen@example.com",
		"noat":                "noat",
	} {
		if got := quoteAddr(in); got != want {
			t.Errorf("quoteAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func writeControl(t *testing.T, files map[string]string) control.Dir {
	d := t.TempDir()
	for n, c := range files {
		os.WriteFile(filepath.Join(d, n), []byte(c), 0644)
	}
	return control.Open(d)
}

func TestRoutes(t *testing.T) {
	ctl := writeControl(t, map[string]string{"smtproutes": "# routes\nexample.com:relay.example.net\n.example.com:sub.example.net:2525\n:default.example.net\nmxonly.example.org:\nv6.example.org:[2001:db8::1]:26\nExample.COM:second.example.net\n"})
	cfg, err := LoadConfig(ctl)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]Route{
		"example.com":        {Domain: "example.com", Relay: "relay.example.net"},
		"EXAMPLE.com":        {Domain: "example.com", Relay: "relay.example.net"},
		"a.b.example.com":    {Domain: ".example.com", Relay: "sub.example.net", Port: 2525},
		"other.test":         {Domain: "", Relay: "default.example.net"},
		"mxonly.example.org": {Domain: "mxonly.example.org"},
		"v6.example.org":     {Domain: "v6.example.org", Relay: "[2001:db8::1]", Port: 26},
	} {
		got, ok := cfg.Routes.Lookup(host)
		if !ok || got != want {
			t.Errorf("Lookup(%q) = %+v %v, want %+v", host, got, ok, want)
		}
	}
	for _, bad := range []string{"nocolon\n", "x.test:relay:notaport\n", "x.test:relay:0\n", "x.test:[::1\n", "x.test:a b\n"} {
		_, err := LoadConfig(writeControl(t, map[string]string{"smtproutes": "# ok\n" + bad}))
		var ce *control.Error
		if !errors.As(err, &ce) || ce.Line != 2 || !strings.HasSuffix(ce.File, "smtproutes") {
			t.Errorf("%q: error %v, want smtproutes:2", bad, err)
		}
	}
}

func TestOutgoingIPAndTLSDestinations(t *testing.T) {
	ctl := writeControl(t, map[string]string{
		"outgoingip":      "192.0.2.1,2001:db8::1\nexample.com:192.0.2.2\n",
		"tlsdestinations": "bank.example:verify\n.secure.example:encrypt\nbroken.example:none\npinned.example:sha256=" + strings.Repeat("AB:", 31) + "AB\n",
		"helohost":        "helo.example\n",
		"timeoutconnect":  "7\n",
	})
	cfg, err := LoadConfig(ctl)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Helo != "helo.example" || cfg.ConnectTimeout.Seconds() != 7 || cfg.Timeout.Seconds() != 1200 {
		t.Errorf("helo %q timeouts %v %v", cfg.Helo, cfg.ConnectTimeout, cfg.Timeout)
	}
	src := func(dom, a string) string {
		s := cfg.source(dom, netip.MustParseAddr(a))
		if s == nil {
			return ""
		}
		return s.String()
	}
	if src("other.test", "198.51.100.1") != "192.0.2.1:0" || src("other.test", "2001:db8::9") != "[2001:db8::1]:0" || src("example.com", "198.51.100.1") != "192.0.2.2:0" || src("example.com", "2001:db8::9") != "" {
		t.Errorf("sources wrong: %+v", cfg.Sources)
	}
	pol := func(dom string) TLSPolicy {
		p, _ := cfg.TLSPolicies.TLSPolicy(context.Background(), dom, "mx")
		return p
	}
	if pol("bank.example").Mode != TLSVerify || pol("a.secure.example").Mode != TLSEncrypt || pol("broken.example").Mode != TLSNone || pol("else.example").Mode != TLSMay {
		t.Error("policies wrong")
	}
	if p := pol("pinned.example"); p.Mode != TLSVerify || len(p.Pins) != 1 || p.Pins[0][0] != 0xab {
		t.Errorf("pin %+v", p)
	}
	for name, bad := range map[string]string{
		"outgoingip":      "example.com:notanip\n",
		"tlsdestinations": "x.example:sometimes\n",
	} {
		_, err := LoadConfig(writeControl(t, map[string]string{name: bad}))
		var ce *control.Error
		if !errors.As(err, &ce) || ce.Line != 1 {
			t.Errorf("%s %q: %v", name, bad, err)
		}
	}
	if _, err := LoadConfig(writeControl(t, map[string]string{"tlsdestinations": "x:sha256=abcd\n"})); err == nil {
		t.Error("short fingerprint accepted")
	}
}

func TestDNSOutcomes(t *testing.T) {
	for _, c := range []struct {
		kind   dnsresolve.Kind
		status byte
		text   string
	}{
		{dnsresolve.Temporary, MsgTemp, "Sorry, I couldn't find any host by that name. (#4.1.2)\n"},
		{dnsresolve.NoHost, MsgPerm, "Sorry, I couldn't find any host named bad?host. (#5.1.2)\n"},
		{dnsresolve.NoAddress, MsgPerm, textNoMX},
		{dnsresolve.NullMX, MsgPerm, "Sorry, bad?host does not accept mail: it publishes a null MX (RFC 7505). (#5.1.10)\n"},
	} {
		o := dnsOutcome("bad\nhost", &dnsresolve.Error{Kind: c.kind, Name: "x", Msg: "m"})
		if o.Status != c.status || !strings.HasPrefix(o.Text, c.text) {
			t.Errorf("kind %d: %s", c.kind, o)
		}
	}
}

func TestWriteToFormat(t *testing.T) {
	o := Outcome{Recipients: []RecipientResult{{Status: RcptOK}, {Status: RcptPerm, Text: "x\x00y\n"}}, Status: MsgOK, Text: "done.\n"}
	var b bytes.Buffer
	o.WriteTo(&b)
	if b.String() != "r\x00hx?y\n\x00Kdone.\n\x00" {
		t.Errorf("%q", b.String())
	}
	b.Reset()
	UsageOutcome().WriteTo(&b)
	if b.String() != "DI (qmail-remote) was invoked improperly. (#5.3.5)\n\x00" {
		t.Errorf("%q", b.String())
	}
}

func TestBestLocalPref(t *testing.T) {
	a := netip.MustParseAddr
	hosts := []dnsresolve.Host{
		{Name: "mx1", Pref: 10, Addrs: []netip.Addr{a("192.0.2.1")}},
		{Name: "me", Pref: 20, Addrs: []netip.Addr{a("192.0.2.9")}},
		{Name: "mx3", Pref: 30, Addrs: []netip.Addr{a("192.0.2.3")}},
	}
	if got := bestLocalPref(hosts, []netip.Addr{a("192.0.2.9")}); got != 20 {
		t.Errorf("got %d", got)
	}
	if got := bestLocalPref(hosts, nil); got != prefAnything {
		t.Errorf("got %d", got)
	}
	// This host as the best MX: nothing is better, the message bounces.
	cfg := &Config{Resolver: staticResolver{hosts: hosts[1:2]}, LocalAddrs: func() []netip.Addr { return []netip.Addr{a("192.0.2.9")} }}
	out := Deliver(context.Background(), cfg, "example.test", "s", []string{"r@example.test"}, strings.NewReader("x\n"))
	if out.Status != MsgPerm || out.Text != textAmbigMX {
		t.Errorf("%s", out)
	}
}

type staticResolver struct{ hosts []dnsresolve.Host }

func (s staticResolver) MX(context.Context, string) ([]dnsresolve.Host, error) { return s.hosts, nil }
func (s staticResolver) Addrs(context.Context, string) ([]netip.Addr, error) {
	return s.hosts[0].Addrs, nil
}

func TestUnreadableMessage(t *testing.T) {
	out := Deliver(context.Background(), &Config{}, "example.test", "s", []string{"r"}, errReader{})
	if out.Status != MsgTemp || out.Text != textReadMsg {
		t.Errorf("%s", out)
	}
	if !reflect.DeepEqual(out.Recipients, []RecipientResult(nil)) {
		t.Error("recipient reports for an unread message")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestUnsendableAddresses(t *testing.T) {
	s := startSink(t)
	rec := startRecorder(t, "127.0.0.1:"+itoa(s.Port))
	cfg := relayConfig(portOf(rec.Addr))
	out := deliver(t, cfg, "s@c.test", []string{"a@example.test", "evil@example.test>\r\nRSET\r\nRCPT TO:<x@example.test", "b@example.test"}, "Subject: x\n\nhi\n")
	if out.Status != MsgOK || len(out.Recipients) != 3 || out.Recipients[0].Status != RcptOK || out.Recipients[1].Status != RcptPerm || out.Recipients[2].Status != RcptOK {
		t.Fatalf("%s", out)
	}
	if w := rec.Sent(); strings.Contains(w, "RSET") || strings.Contains(w, "evil") {
		t.Fatalf("smuggled command went out:\n%q", w)
	}
	out = deliver(t, cfg, "s@c.test\r\nDATA", []string{"a@example.test"}, "x\n")
	if out.Status != MsgPerm || !strings.Contains(out.Text, "control character") {
		t.Fatalf("%s", out)
	}
	out = deliver(t, cfg, "s@c.test", []string{"a\n@example.test"}, "x\n")
	if out.Status != MsgPerm || len(out.Recipients) != 1 || out.Recipients[0].Status != RcptPerm {
		t.Fatalf("%s", out)
	}
	if _, err := LoadConfig(writeControl(t, map[string]string{"helohost": "bad name\n"})); err == nil {
		t.Error("helohost with a space accepted")
	}
}

func TestTCPTOSkipsTimedOutHost(t *testing.T) {
	s := startSink(t)
	p := filepath.Join(t.TempDir(), "tcpto")
	rec := make([]byte, tcpto.Size)
	copy(rec, []byte{127, 0, 0, 1, 2})
	binary.LittleEndian.PutUint32(rec[8:], uint32(time.Now().Unix()))
	os.WriteFile(p, rec, 0644)
	cfg := relayConfig(s.Port)
	cfg.TCPTO = &tcpto.File{Path: p}
	out := deliver(t, cfg, "s@c.test", []string{"a@example.test"}, "x\n")
	if out.Status != MsgTemp || !strings.Contains(out.Text, "lock/tcpto") {
		t.Fatalf("%s", out)
	}
	// Once cleared (qmail-tcpok), the host is used, and a good connection keeps the
	// record clear.
	if err := cfg.TCPTO.Clear(); err != nil {
		t.Fatal(err)
	}
	if out := deliver(t, cfg, "s@c.test", []string{"a@example.test"}, "x\n"); out.Status != MsgOK {
		t.Fatalf("%s", out)
	}
	if rs, _ := cfg.TCPTO.Records(); len(rs) != 0 {
		t.Errorf("records %+v", rs)
	}
}

func TestTimeoutRemote(t *testing.T) {
	// A server that accepts and then says nothing: the read times out and the
	// message is deferred as a dropped connection.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	cfg := relayConfig(portOf(l.Addr().String()))
	cfg.Timeout = 200 * time.Millisecond
	out := deliver(t, cfg, "s@c.test", []string{"a@example.test"}, "x\n")
	if out.Status != MsgTemp || out.Text != "Connected to 127.0.0.1 but connection died. (#4.4.2)\n" {
		t.Fatalf("%q", out.String())
	}
}

// TestNoProgramRuns guards the rule that nothing taken from DNS or a server ever
// reaches a shell: the delivery code runs no programs at all.
func TestNoProgramRuns(t *testing.T) {
	for _, dir := range []string{".", "../dnsresolve", "../tcpto"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			pf, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range pf.Imports {
				if p := strings.Trim(imp.Path.Value, `"`); p == "os/exec" || p == "syscall" && !strings.HasSuffix(f, "tcpto.go") {
					t.Errorf("%s imports %s", f, p)
				}
			}
		}
	}
}

func TestDroppedDuringData(t *testing.T) {
	// smtp-sink -A 0 answers DATA with 354 and then refuses to read, ending the
	// session before the message is through: that is a dropped connection, not an
	// unreadable message.
	s := startSink(t, "-A", "0")
	big := "Subject: big\n\n" + strings.Repeat(strings.Repeat("z", 999)+"\n", 4000)
	out := deliver(t, relayConfig(s.Port), "s@c.test", []string{"a@example.test"}, big)
	if out.Status == MsgOK || strings.Contains(out.Text, "Unable to read message") {
		t.Fatalf("%.300s", out)
	}
}

func TestMXPointingHereBounces(t *testing.T) {
	for _, a := range []string{"127.0.0.1", "0.0.0.0"} {
		hosts := []dnsresolve.Host{{Name: "mx.example.test", Pref: 10, Addrs: []netip.Addr{netip.MustParseAddr(a)}}}
		cfg := &Config{Resolver: staticResolver{hosts: hosts}} // the real interface list
		out := Deliver(context.Background(), cfg, "example.test", "s", []string{"r@example.test"}, strings.NewReader("x\n"))
		if out.Status != MsgPerm || out.Text != textAmbigMX {
			t.Errorf("MX at %s: %s", a, out)
		}
	}
}

func TestStrictest(t *testing.T) {
	file := PolicyFile{{domain: "a.test", pol: TLSPolicy{Mode: TLSNone}}, {domain: "b.test", pol: TLSPolicy{Mode: TLSEncrypt}}}
	pinned := PolicyFile{{domain: "", pol: TLSPolicy{Mode: TLSVerify, Pins: [][32]byte{{1}}}}}
	p, err := Strictest{file, pinned}.TLSPolicy(context.Background(), "b.test", "mx")
	if err != nil || p.Mode != TLSVerify || len(p.Pins) != 1 {
		t.Errorf("%+v %v", p, err)
	}
	p, _ = Strictest{file, PolicyFile(nil)}.TLSPolicy(context.Background(), "a.test", "mx")
	if p.Mode != TLSNone {
		t.Errorf("another source's default overrode an explicit none: %v", p.Mode)
	}
	p, _ = Strictest{file, pinned}.TLSPolicy(context.Background(), "a.test", "mx")
	if p.Mode != TLSVerify {
		t.Errorf("none overrode a source that requires TLS: %v", p.Mode)
	}
}

// TestDomainSpellings: a domain written another way that DNS resolves to the same
// name (A-label or U-label, full-width letters, a trailing dot) finds the same
// smtproutes, outgoingip and tlsdestinations lines, so its mail cannot avoid a route
// or a TLS requirement by the way its address is spelled.
func TestDomainSpellings(t *testing.T) {
	ctl := writeControl(t, map[string]string{
		"smtproutes":      "bücher.example:relay.example.net\nxn--caf-dma.example:relay2.example.net\n.bank.example:relay3.example.net\n",
		"tlsdestinations": "bank.example:verify\nbücher.example:encrypt\n.xn--caf-dma.example:verify\n",
	})
	cfg, err := LoadConfig(ctl)
	if err != nil {
		t.Fatal(err)
	}
	pol := func(dom string) TLSMode {
		p, _ := cfg.TLSPolicies.TLSPolicy(context.Background(), dom, "mx")
		return p.Mode
	}
	for dom, want := range map[string]TLSMode{
		"bank.example":            TLSVerify,
		"bank.example.":           TLSVerify,
		"BANK.EXAMPLE.":           TLSVerify,
		"ｂａｎｋ.example":            TLSVerify, // full-width letters map to bank.example
		"bank．example":            TLSVerify, // so does a full-width dot
		"xn--bcher-kva.example":   TLSEncrypt,
		"BÜCHER.example":          TLSEncrypt,
		"mx.café.example":         TLSVerify,
		"mx.xn--caf-dma.example.": TLSVerify,
		"other.example":           TLSMay,
	} {
		if got := pol(dom); got != want {
			t.Errorf("TLS policy for %q = %v, want %v", dom, got, want)
		}
	}
	for host, relay := range map[string]string{
		"xn--bcher-kva.example": "relay.example.net",
		"bücher.example.":       "relay.example.net",
		"café.example":          "relay2.example.net",
		"a.ｂａｎｋ.example":        "relay3.example.net",
	} {
		if r, ok := cfg.Routes.Lookup(host); !ok || r.Relay != relay {
			t.Errorf("route for %q = %+v %v, want relay %s", host, r, ok, relay)
		}
	}
}

// TestAddressCannotAddParameters: a domain (or an address without one) holding a
// space or an angle bracket would close the path in MAIL FROM or RCPT TO and add
// ESMTP parameters of its own; such an address is refused, never sent.
func TestAddressCannotAddParameters(t *testing.T) {
	s := startSink(t)
	rec := startRecorder(t, "127.0.0.1:"+itoa(s.Port))
	cfg := relayConfig(portOf(rec.Addr))
	out := deliver(t, cfg, "s@c.test", []string{"a@example.test", "b@example.test> NOTIFY=NEVER", "c@x>", "d<e", "\"q> r\"@example.test"}, "Subject: x\n\nhi\n")
	if out.Status != MsgOK || len(out.Recipients) != 5 || out.Recipients[0].Status != RcptOK || out.Recipients[1].Status != RcptPerm ||
		out.Recipients[2].Status != RcptPerm || out.Recipients[3].Status != RcptPerm || out.Recipients[4].Status != RcptOK {
		t.Fatalf("%s", out)
	}
	if w := rec.Sent(); strings.Contains(w, "NOTIFY") || strings.Contains(w, "<c@") || strings.Contains(w, "d<e") {
		t.Fatalf("parameter went out:\n%q", w)
	}
	out = deliver(t, cfg, "s@c.test> RET=FULL", []string{"a@example.test"}, "x\n")
	if out.Status != MsgPerm || strings.Contains(rec.Sent(), "RET=") {
		t.Fatalf("%s\n%q", out, rec.Sent())
	}
}
