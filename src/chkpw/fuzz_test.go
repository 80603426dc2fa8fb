package chkpw

import (
	"strings"
	"testing"
)

// FuzzParse: any file parses or is refused with a line number; what is accepted
// survives a rewrite unchanged.
func FuzzParse(f *testing.F) {
	h := "$2a$04$Z2Jr2bV3fQ9bYk0dA2q9Y.8c1c3aQyWv1m7m5bq6b0oQeVZ6pQZ7e"
	for _, s := range []string{"alice:" + h + "\n", "# c\nbob:" + h + ":1:2:/home/bob\n", "x:y\n", ":\n", "a:" + h + ":-1:0:/\n", "\n\n#\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		es, err := Parse(strings.NewReader(in), "f")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f:") {
				t.Fatalf("error without the file: %v", err)
			}
			return
		}
		var b strings.Builder
		for _, e := range es {
			if ValidUser(e.User) != nil {
				t.Fatalf("accepted user %q", e.User)
			}
			b.WriteString(e.line() + "\n")
		}
		again, err := Parse(strings.NewReader(b.String()), "f")
		if err != nil || len(again) != len(es) {
			t.Fatalf("rewrite of %q: %v", b.String(), err)
		}
		for i := range es {
			if again[i] != es[i] {
				t.Fatalf("rewrite changed %+v to %+v", es[i], again[i])
			}
		}
	})
}
