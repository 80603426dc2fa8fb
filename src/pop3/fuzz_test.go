package pop3

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type rw struct {
	io.Reader
	io.Writer
}

// checkReplies fails unless every line the server wrote is a status line or part of
// a multi-line answer, and every multi-line answer ends with a lone dot.
func checkReplies(t *testing.T, out []byte) {
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
		t.Fatalf("output does not end in CR LF: %q", out)
	}
	if !bytes.HasPrefix(out, []byte("+OK")) && !bytes.HasPrefix(out, []byte("-ERR")) {
		t.Fatalf("output does not start with a status: %q", out)
	}
}

func FuzzPop3d(f *testing.F) {
	for _, s := range []string{
		"STAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 1\r\nDELE 1\r\nRSET\r\nLAST\r\nQUIT\r\n",
		"LIST 0\r\nLIST 99999999999999999999\r\nTOP 1 -1\r\nTOP\r\nDELE x\r\nRETR 2\r\nRETR 2\r\n",
		"DELE 1\r\nDELE 1\r\nRETR 1\r\nQUIT\r\n",
		strings.Repeat("A", 2000) + "\r\n",
		"CAPA\nNOOP\nUSER x\nQUIT",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		dir := t.TempDir()
		for _, sub := range []string{"new", "cur", "tmp"} {
			os.Mkdir(filepath.Join(dir, sub), 0700)
		}
		os.WriteFile(filepath.Join(dir, "new", "1.a.host"), []byte("Subject: a\n\n.dot\nbody"), 0600)
		os.WriteFile(filepath.Join(dir, "cur", "2.b.host:2,S"), []byte("Subject: b\r\n\r\nx\r\n"), 0600)
		var out bytes.Buffer
		Pop3d(dir, bytes.NewReader(in), &out, nil)
		checkReplies(t, out.Bytes())
		// Every answered RETR ends with the terminating dot line.
		if bytes.Contains(in, []byte("RETR 1")) && !bytes.Contains(out.Bytes(), []byte(".\r\n")) && bytes.Contains(out.Bytes(), []byte("Subject: a")) {
			t.Fatalf("RETR without its end: %q", out.Bytes())
		}
	})
}

func FuzzPopup(f *testing.F) {
	for _, s := range []string{
		"CAPA\r\nUSER alice\r\nPASS x\r\n",
		"APOP alice 0123\r\n",
		"STLS\r\nUSER\r\nPASS\r\nQUIT\r\n",
		strings.Repeat("U", 5000),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		// No child: an accepted PASS or APOP ends the session with 111 instead of
		// running a program.
		Popup(nil, bytes.NewReader(in), &out, PopupConfig{Hostname: "h.example", Plain: true})
		checkReplies(t, out.Bytes())
		sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
		for sc.Scan() {
			if len(sc.Text()) > 512 {
				t.Fatalf("reply line of %d bytes", len(sc.Text()))
			}
		}
	})
}
