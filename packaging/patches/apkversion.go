package patches

import (
	"fmt"
	"strconv"
)

// Alpine's apk is not packaged for Debian, so the site suffix's ordering in apk is
// checked against apk's documented version rules, implemented here:
//
//	version = digits {"." digits} [letter] {"_" suffix [digits]} ["-r" digits]
//
// Tokens are compared in order. Two tokens of the same kind compare by value: numbers
// numerically, letters by code, suffixes in the order
// alpha < beta < pre < rc < (none) < cvs < svn < git < hg < p. At the first place the
// kinds differ, a pre-release suffix (alpha, beta, pre, rc) makes its version the
// lesser; otherwise the kind that comes later in the grammar (digit, letter, suffix,
// suffix number, revision, end) makes its version the lesser, so "1.2" < "1.2.1",
// "1.2a" < "1.2.1", "1.2-r1" < "1.2_p1" and "1.2" < "1.2_p0". apk's "~hash" part
// and leading-zero digit rules are not implemented: the pipeline never writes them.

type apkKind int

const (
	apkDigit apkKind = iota
	apkLetter
	apkSuffix
	apkSuffixNo
	apkRevision
	apkEnd
)

type apkToken struct {
	kind apkKind
	val  int64
}

var apkSuffixes = map[string]int64{
	"alpha": -4, "beta": -3, "pre": -2, "rc": -1,
	"cvs": 1, "svn": 2, "git": 3, "hg": 4, "p": 5,
}

func number(s string, i int) (int64, int, error) {
	j := i
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	if j == i {
		return 0, i, fmt.Errorf("want a number at %d", i)
	}
	if j-i > 18 {
		return 0, i, fmt.Errorf("number too long at %d", i)
	}
	n, err := strconv.ParseInt(s[i:j], 10, 64)
	return n, j, err
}

// parseAPK splits an apk version into tokens, refusing what apk would refuse.
func parseAPK(s string) ([]apkToken, error) {
	var toks []apkToken
	n, i, err := number(s, 0)
	if err != nil {
		return nil, fmt.Errorf("apk version %q: %v", s, err)
	}
	toks = append(toks, apkToken{apkDigit, n})
	for i < len(s) && s[i] == '.' {
		if n, i, err = number(s, i+1); err != nil {
			return nil, fmt.Errorf("apk version %q: %v", s, err)
		}
		toks = append(toks, apkToken{apkDigit, n})
	}
	if i < len(s) && s[i] >= 'a' && s[i] <= 'z' {
		toks = append(toks, apkToken{apkLetter, int64(s[i])})
		i++
	}
	for i < len(s) && s[i] == '_' {
		j := i + 1
		for j < len(s) && s[j] >= 'a' && s[j] <= 'z' {
			j++
		}
		v, ok := apkSuffixes[s[i+1:j]]
		if !ok {
			return nil, fmt.Errorf("apk version %q: unknown suffix %q", s, s[i+1:j])
		}
		toks = append(toks, apkToken{apkSuffix, v})
		i = j
		if i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if n, i, err = number(s, i); err != nil {
				return nil, fmt.Errorf("apk version %q: %v", s, err)
			}
			toks = append(toks, apkToken{apkSuffixNo, n})
		}
	}
	if i+1 < len(s) && s[i] == '-' && s[i+1] == 'r' {
		if n, i, err = number(s, i+2); err != nil {
			return nil, fmt.Errorf("apk version %q: %v", s, err)
		}
		toks = append(toks, apkToken{apkRevision, n})
	}
	if i != len(s) {
		return nil, fmt.Errorf("apk version %q: unexpected %q at %d", s, s[i:], i)
	}
	return toks, nil
}

// CompareAPK compares two apk versions by apk's rules: -1, 0 or 1.
func CompareAPK(a, b string) (int, error) {
	ta, err := parseAPK(a)
	if err != nil {
		return 0, err
	}
	tb, err := parseAPK(b)
	if err != nil {
		return 0, err
	}
	end := apkToken{kind: apkEnd}
	for i := 0; ; i++ {
		x, y := end, end
		if i < len(ta) {
			x = ta[i]
		}
		if i < len(tb) {
			y = tb[i]
		}
		if x.kind != y.kind {
			switch {
			case x.kind == apkSuffix && x.val < 0:
				return -1, nil
			case y.kind == apkSuffix && y.val < 0:
				return 1, nil
			case x.kind > y.kind:
				return -1, nil
			}
			return 1, nil
		}
		if x.kind == apkEnd {
			return 0, nil
		}
		if x.val != y.val {
			if x.val < y.val {
				return -1, nil
			}
			return 1, nil
		}
	}
}
