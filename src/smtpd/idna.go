package smtpd

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// asciiDomain returns the lowercased ASCII form of a domain: every label with
// non-ASCII characters becomes its A-label ("xn--" and the label's Punycode, RFC 3492),
// so rcpthosts written in either form match a UTF-8 domain from an SMTPUTF8 client.
// Labels are lowercased but not NFC-normalised: a client must send domains in the form
// it means (RFC 6531 asks for U-labels, which are NFC already).
func asciiDomain(d string) (string, error) {
	if isASCII(d) {
		return strings.ToLower(d), nil
	}
	if !utf8.ValidString(d) {
		return "", errors.New("domain is not valid UTF-8")
	}
	labels := strings.Split(d, ".")
	for i, l := range labels {
		l = strings.ToLower(l)
		if !isASCII(l) {
			p, err := punycode(l)
			if err != nil {
				return "", err
			}
			l = "xn--" + p
		}
		labels[i] = l
	}
	out := strings.Join(labels, ".")
	if len(out) > 255 {
		return "", errors.New("domain too long")
	}
	return out, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// Punycode parameters from RFC 3492 section 5.
const (
	pcBase        = 36
	pcTMin        = 1
	pcTMax        = 26
	pcSkew        = 38
	pcDamp        = 700
	pcInitialBias = 72
	pcInitialN    = 128
)

func pcAdapt(delta, numPoints int, first bool) int {
	if first {
		delta /= pcDamp
	} else {
		delta /= 2
	}
	delta += delta / numPoints
	k := 0
	for delta > ((pcBase-pcTMin)*pcTMax)/2 {
		delta /= pcBase - pcTMin
		k += pcBase
	}
	return k + (pcBase-pcTMin+1)*delta/(delta+pcSkew)
}

func pcDigit(d int) byte {
	if d < 26 {
		return byte('a' + d)
	}
	return byte('0' + d - 26)
}

// punycode encodes one label (RFC 3492 section 6.3).
func punycode(label string) (string, error) {
	runes := []rune(label)
	if len(runes) > 63 {
		return "", errors.New("label too long")
	}
	var out []byte
	for _, r := range runes {
		if r < 0x80 {
			out = append(out, byte(r))
		}
	}
	b := len(out)
	h := b
	if b > 0 {
		out = append(out, '-')
	}
	n, delta, bias := pcInitialN, 0, pcInitialBias
	for h < len(runes) {
		m := int(^uint(0) >> 1)
		for _, r := range runes {
			if int(r) >= n && int(r) < m {
				m = int(r)
			}
		}
		if (m-n)*(h+1) > 1<<30 {
			return "", errors.New("punycode overflow")
		}
		delta += (m - n) * (h + 1)
		n = m
		for _, r := range runes {
			if int(r) < n {
				delta++
			}
			if int(r) == n {
				q := delta
				for k := pcBase; ; k += pcBase {
					t := k - bias
					if t < pcTMin {
						t = pcTMin
					} else if t > pcTMax {
						t = pcTMax
					}
					if q < t {
						break
					}
					out = append(out, pcDigit(t+(q-t)%(pcBase-t)))
					q = (q - t) / (pcBase - t)
				}
				out = append(out, pcDigit(q))
				bias = pcAdapt(delta, h+1, h == b)
				delta = 0
				h++
			}
		}
		delta++
		n++
	}
	if len(out) > 59 { // "xn--" and this must fit DNS's 63-byte label
		return "", errors.New("label too long")
	}
	return string(out), nil
}

// unicodeDomain returns the domain with every A-label ("xn--...") decoded, lowercased;
// ok is false when a label does not decode.
func unicodeDomain(d string) (string, bool) {
	labels := strings.Split(strings.ToLower(d), ".")
	changed := false
	for i, l := range labels {
		if strings.HasPrefix(l, "xn--") {
			u, err := unpunycode(l[4:])
			if err != nil {
				return "", false
			}
			labels[i], changed = u, true
		}
	}
	return strings.Join(labels, "."), changed
}

func pcValue(c byte) (int, bool) {
	switch {
	case c >= 'a' && c <= 'z':
		return int(c - 'a'), true
	case c >= '0' && c <= '9':
		return int(c-'0') + 26, true
	}
	return 0, false
}

// unpunycode decodes one label (RFC 3492 section 6.2).
func unpunycode(s string) (string, error) {
	if len(s) > 59 {
		return "", errors.New("label too long")
	}
	var out []rune
	rest := s
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		for j := 0; j < i; j++ {
			if s[j] >= 0x80 {
				return "", errors.New("non-ASCII in punycode")
			}
			out = append(out, rune(s[j]))
		}
		rest = s[i+1:]
	}
	n, bias, i := pcInitialN, pcInitialBias, 0
	for pos := 0; pos < len(rest); {
		oldi, w := i, 1
		for k := pcBase; ; k += pcBase {
			if pos >= len(rest) {
				return "", errors.New("truncated punycode")
			}
			digit, ok := pcValue(rest[pos])
			pos++
			if !ok {
				return "", errors.New("bad punycode digit")
			}
			if digit > (1<<30-i)/w {
				return "", errors.New("punycode overflow")
			}
			i += digit * w
			t := k - bias
			if t < pcTMin {
				t = pcTMin
			} else if t > pcTMax {
				t = pcTMax
			}
			if digit < t {
				break
			}
			if w > (1<<30)/(pcBase-t) {
				return "", errors.New("punycode overflow")
			}
			w *= pcBase - t
		}
		bias = pcAdapt(i-oldi, len(out)+1, oldi == 0)
		n += i / (len(out) + 1)
		i %= len(out) + 1
		if n > utf8.MaxRune || n >= 0xD800 && n <= 0xDFFF {
			return "", errors.New("bad code point")
		}
		out = append(out, 0)
		copy(out[i+1:], out[i:])
		out[i] = rune(n)
		i++
	}
	return string(out), nil
}
