package sendmail

import (
	"strings"
	"testing"
)

// FuzzParse: any command line is parsed or refused, never half-understood: an accepted
// one always yields qmail-inject arguments that end the options with "--".
func FuzzParse(f *testing.F) {
	for _, s := range []string{"-t -i", "-f\x00x a", "-oem -oi -- a", "-bs", "-tif", "-N", "-E", "-q1h", "-- -t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		inv, err := Parse("sendmail", args)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("empty error for %q", args)
			}
			return
		}
		a := inv.InjectArgs()
		n := 0
		for _, x := range a {
			if x == "--" {
				n++
			}
		}
		if n < 1 || len(a) < len(inv.Recipients)+2 {
			t.Fatalf("qmail-inject arguments %q for %q", a, args)
		}
		if inv.Mode == Inject && !inv.FromHeader && len(inv.Recipients) == 0 {
			t.Fatalf("accepted %q with nobody to send to", args)
		}
	})
}
