package users

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/notqmail/notqmail/src/ids"
)

// HomeStrategy says what qmail-pw2u does about an account's home directory.
type HomeStrategy int

const (
	HomeIgnore      HomeStrategy = iota // -H: do not look at it
	HomeRequire                         // -h: fail if it is missing; skip if another user owns it
	HomeSkipMissing                     // -o (default): skip if missing or owned by another user
)

// PW2UOptions are qmail-pw2u's options and the users/ directory it reads.
type PW2UOptions struct {
	// UsersDir holds include, exclude, mailnames, subusers and append; each is optional.
	UsersDir   string
	Home       HomeStrategy
	AllowUpper bool   // -u: keep accounts whose names contain upper-case letters
	Break      string // the user-extension delimiter, "-" by default (-c); "" for none (-C)
	Dash       string // "-" by default; "-/" with the -/ option
}

// DefaultPW2UOptions returns qmail-pw2u's defaults for the users/ directory dir.
func DefaultPW2UOptions(dir string) PW2UOptions {
	return PW2UOptions{UsersDir: dir, Home: HomeSkipMissing, Break: "-", Dash: "-"}
}

// PW2U converts passwd-format lines (name:passwd:uid:gid:gecos:home:shell) from r into a
// users/assign on w, as qmail-pw2u(8) does:
//
//   - accounts with uid 0, malformed lines, names with upper-case letters (unless
//     AllowUpper), names not in users/include (when it exists), names in users/exclude,
//     and, depending on Home, accounts whose home is missing or owned by someone else
//     are skipped;
//   - each account gets "=name:user:uid:gid:home:::" and, with a delimiter,
//     "+name-:user:uid:gid:home:-::" for every name users/mailnames gives it
//     ("user:name1:name2"), or its own name;
//   - the alias user also gets the catch-all "+:alias:uid:gid:home:-::", and must exist;
//   - users/subusers lines "sub:user:pre:" give "=sub:user:uid:gid:home:-:pre:" and
//     "+sub-:user:uid:gid:home:-:pre-:";
//   - users/append is copied verbatim, and a final "." ends the output.
//
// Nothing is written unless the whole conversion succeeds.
func PW2U(r io.Reader, w io.Writer, o PW2UOptions) error {
	if len(o.Break) > 1 {
		return fmt.Errorf("the user-extension delimiter must be one character, not %q", o.Break)
	}
	include, okInclude, err := readList(filepath.Join(o.UsersDir, "include"))
	if err != nil {
		return err
	}
	exclude, _, err := readList(filepath.Join(o.UsersDir, "exclude"))
	if err != nil {
		return err
	}
	mailnames, _, err := readList(filepath.Join(o.UsersDir, "mailnames"))
	if err != nil {
		return err
	}
	inc := setOf(include)
	exc := setOf(exclude)
	mana := map[string]string{}
	for _, l := range mailnames {
		user, names, _ := strings.Cut(l, ":")
		if _, dup := mana[user]; !dup {
			mana[user] = names
		}
	}

	var out bytes.Buffer
	accounts := map[string]string{} // user -> ":user:uid:gid:home:" for subusers
	sawAlias := false
	br := bufio.NewReaderSize(r, maxLine)
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("input line %d is longer than %d bytes", n, maxLine)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("unable to read input: %w", err)
		}
		if len(line) > 0 {
			a, ok, aerr := account(strings.TrimSuffix(string(line), "\n"), o, okInclude, inc, exc)
			if aerr != nil {
				return aerr
			}
			if ok {
				uugh := ":" + a.user + ":" + a.uid + ":" + a.gid + ":" + a.home + ":"
				if _, dup := accounts[a.user]; !dup {
					accounts[a.user] = uugh
				}
				if a.user == ids.Alias {
					fmt.Fprintf(&out, "+%s%s::\n", uugh, o.Dash)
					sawAlias = true
				}
				names, ok := mana[a.user]
				if !ok {
					names = a.user
				}
				for _, name := range strings.Split(names, ":") {
					if name == "" {
						continue
					}
					fmt.Fprintf(&out, "=%s%s::\n", name, uugh)
					if o.Break != "" {
						fmt.Fprintf(&out, "+%s%s%s%s::\n", name, o.Break, uugh, o.Dash)
					}
				}
			}
		}
		if err != nil { // EOF
			break
		}
	}
	if !sawAlias {
		return fmt.Errorf("unable to find %s user", ids.Alias)
	}

	if err := subusers(filepath.Join(o.UsersDir, "subusers"), accounts, o, &out); err != nil {
		return err
	}
	if b, err := os.ReadFile(filepath.Join(o.UsersDir, "append")); err == nil {
		out.Write(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unable to read %s: %w", filepath.Join(o.UsersDir, "append"), err)
	}
	out.WriteString(".\n")
	_, err = w.Write(out.Bytes())
	if err != nil {
		return fmt.Errorf("unable to write output: %w", err)
	}
	return nil
}

type pwAccount struct{ user, uid, gid, home string }

// account parses and filters one passwd line; ok is false for a skipped line.
func account(line string, o PW2UOptions, okInclude bool, inc, exc map[string]bool) (pwAccount, bool, error) {
	if strings.IndexByte(line, 0) >= 0 {
		return pwAccount{}, false, nil
	}
	f := strings.SplitN(line, ":", 7)
	if len(f) < 7 {
		return pwAccount{}, false, nil // qmail needs the colon after the home directory
	}
	a := pwAccount{user: f[0], uid: f[2], gid: f[3], home: f[5]}
	uid, okU := parseID(a.uid)
	_, okG := parseID(a.gid)
	if !okU || !okG || uid == 0 || a.user == "" {
		return a, false, nil
	}
	if !o.AllowUpper && strings.ContainsAny(a.user, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		return a, false, nil
	}
	if okInclude && !inc[a.user] {
		return a, false, nil
	}
	if exc[a.user] {
		return a, false, nil
	}
	if o.Home != HomeIgnore {
		fi, err := os.Stat(a.home)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && o.Home == HomeSkipMissing {
				return a, false, nil
			}
			return a, false, fmt.Errorf("unable to stat %s (home of %s): %w", a.home, a.user, unwrapPathErr(err))
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || int(st.Uid) != uid {
			return a, false, nil
		}
	}
	return a, true, nil
}

// subusers writes the entries of users/subusers ("sub:user:pre:"); lines without the
// three colons are skipped, as in qmail, and an unknown user is an error.
func subusers(path string, accounts map[string]string, o PW2UOptions, out *bytes.Buffer) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unable to read %s: %w", path, unwrapPathErr(err))
	}
	for n, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 4)
		if len(f) < 4 {
			continue
		}
		sub, user, pre := f[0], f[1], f[2]
		uugh, ok := accounts[user]
		if !ok {
			return fmt.Errorf("%s:%d: unable to find %s user for subuser", path, n+1, user)
		}
		fmt.Fprintf(out, "=%s%s%s:%s:\n", sub, uugh, o.Dash, pre)
		if o.Break != "" {
			// qmail writes a literal "-" after pre here, whatever the delimiter: it
			// names the .qmail file, not the address.
			fmt.Fprintf(out, "+%s%s%s%s:%s-:\n", sub, o.Break, uugh, o.Dash, pre)
		}
	}
	return nil
}

// readList reads a users/ list file as qmail's control_readfile does: trailing white
// space removed, blank lines and '#' comments skipped. ok is false if it is missing.
func readList(path string) ([]string, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("unable to read %s: %w", path, unwrapPathErr(err))
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimRight(l, " \t\r")
		if l == "" || l[0] == '#' {
			continue
		}
		out = append(out, l)
	}
	return out, true, nil
}

func setOf(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[s] = true
	}
	return m
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ParseBreak returns the delimiter that qmail-pw2u's -c option sets: the argument's
// first byte, or none for an empty argument.
func ParseBreak(arg string) string {
	if arg == "" {
		return ""
	}
	return arg[:1]
}

// ParsePW2UArgs parses qmail-pw2u's options, getopt style ("-ohu", "-c+", "-c +", "--"):
// -/ -o -h -H -u -U -c delim -C. It returns the options for the users/ directory dir.
func ParsePW2UArgs(args []string, dir string) (PW2UOptions, error) {
	o := DefaultPW2UOptions(dir)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			if i < len(args) {
				return o, fmt.Errorf("unexpected argument %q", args[i])
			}
			break
		}
		if len(a) < 2 || a[0] != '-' {
			return o, fmt.Errorf("unexpected argument %q", a)
		}
		for j := 1; j < len(a); j++ {
			switch a[j] {
			case '/':
				o.Dash = "-/"
			case 'o':
				o.Home = HomeSkipMissing
			case 'h':
				o.Home = HomeRequire
			case 'H':
				o.Home = HomeIgnore
			case 'u':
				o.AllowUpper = true
			case 'U':
				o.AllowUpper = false
			case 'C':
				o.Break = ""
			case 'c':
				arg := a[j+1:]
				if arg == "" {
					i++
					if i >= len(args) {
						return o, errors.New("option -c needs an argument")
					}
					arg = args[i]
				}
				o.Break = ParseBreak(arg)
				j = len(a)
			default:
				return o, fmt.Errorf("unknown option -%c", a[j])
			}
		}
	}
	return o, nil
}
