package smtpd

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/notqmail/notqmail/src/spp"
)

// ErrAuthFailed is a wrong user name or password.
var ErrAuthFailed = errors.New("authentication failed")

// Authenticator checks a user name and password: nil accepts, ErrAuthFailed
// refuses, any other error is a temporary failure.
type Authenticator func(user, pass string) error

// CheckPassword returns an Authenticator that runs a checkpassword program (the
// interface of qmail-popup and of the qmail-smtpd AUTH patch): argv is the program
// and its arguments, normally another program such as /bin/true; the user name,
// the password and an empty timestamp, each ending in NUL, are on descriptor 3. Exit
// 0 accepts, 1 refuses, anything else is temporary.
func CheckPassword(argv []string, env []string, timeout time.Duration) Authenticator {
	return func(user, pass string) error {
		ctx := context.Background()
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = env
		cmd.ExtraFiles = []*os.File{r}
		if err := cmd.Start(); err != nil {
			r.Close()
			w.Close()
			return err
		}
		r.Close()
		w.Write([]byte(user + "\x00" + pass + "\x00\x00"))
		w.Close()
		err = cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ee) && ee.ExitCode() == 1:
			return ErrAuthFailed
		}
		return err
	}
}

var (
	replyAuthOK        = Reply{235, "2.7.0", "ok, go ahead"}
	replyAuthFailed    = Reply{535, "5.7.8", "authorization failed"}
	replyAuthTemp      = Reply{454, "4.7.0", "temporary authentication failure"}
	replyAuthCancelled = Reply{501, "5.0.0", "auth exchange cancelled"}
	replyAuthSyntax    = Reply{501, "5.5.2", "malformed auth input"}
	replyAuthMech      = Reply{504, "5.5.4", "auth type unimplemented"}
	replyAuthAgain     = Reply{503, "5.5.1", "you're already authenticated"}
	replyAuthInMail    = Reply{503, "5.5.1", "no auth during mail transaction"}
	replyAuthBlocked   = Reply{454, "4.7.0", "too many failed authentications from your address, try again later"}
	replyAuthTooMany   = Reply{421, "4.7.0", "too many failed authentications, closing connection"}
	replyAuthRequired  = Reply{530, "5.7.0", "authentication required"}
)

// maxCheckpasswordInput is what checkpassword reads from descriptor 3.
const maxCheckpasswordInput = 512

// errAuthSyntax is a client response that is not what the mechanism expects.
var errAuthSyntax = errors.New("malformed auth input")

// parsePlain decodes an RFC 4616 PLAIN response: base64 of
// authzid NUL authcid NUL passwd. An authorization identity other than empty or
// the user itself is refused: checkpassword cannot say whether the user may act
// as someone else.
func parsePlain(resp string) (user, pass string, err error) {
	b, err := base64.StdEncoding.DecodeString(resp)
	if err != nil {
		return "", "", errAuthSyntax
	}
	parts := bytes.Split(b, []byte{0})
	if len(parts) != 3 {
		return "", "", errAuthSyntax
	}
	user, pass = string(parts[1]), string(parts[2])
	if len(parts[0]) > 0 && string(parts[0]) != user {
		return "", "", errAuthSyntax
	}
	return user, pass, checkCredentials(user, pass)
}

// decodeLogin decodes one base64 answer of the LOGIN exchange.
func decodeLogin(resp string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(resp)
	if err != nil || bytes.IndexByte(b, 0) >= 0 {
		return "", errAuthSyntax
	}
	return string(b), nil
}

// checkCredentials refuses what the checkpassword interface cannot carry (NUL ends
// each field on descriptor 3) and an empty user name.
func checkCredentials(user, pass string) error {
	if user == "" || strings.ContainsRune(user, 0) || strings.ContainsRune(pass, 0) {
		return errAuthSyntax
	}
	return nil
}

// authOffered reports whether AUTH may be used now: a checkpassword program is
// configured, and the connection is encrypted or control/authwithouttls allows
// plain text.
func (s *session) authOffered() bool {
	return s.cfg.Auth != nil && (s.tls != nil || s.cfg.AuthWithoutTLS)
}

// auth runs the AUTH command: PLAIN (RFC 4616) or LOGIN, then the checkpassword
// program, then the [auth] plugins. Success lets the client relay, as RELAYCLIENT
// does. Failures are counted per session and per client address (AuthLimiter) and
// logged as "auth failed remote=IP ...", a line fail2ban-like tools can match.
func (s *session) auth(arg string) error {
	switch {
	case s.cfg.Auth == nil:
		s.reply(replyUnimplemented)
		return nil
	case !s.authOffered():
		s.reply(replyNeedTLSAuth)
		return nil
	case s.authUser != "":
		s.reply(replyAuthAgain)
		return nil
	case s.inMail:
		s.reply(replyAuthInMail)
		return nil
	case s.cfg.AuthLimit != nil && s.cfg.AuthLimit.Blocked(s.cfg.RemoteIP):
		s.logf("auth blocked remote=%s: too many failures", safe(s.remoteIP()))
		s.reply(replyAuthBlocked)
		return nil
	}
	mech, initial, _ := strings.Cut(strings.TrimSpace(arg), " ")
	mech = strings.ToUpper(mech)
	var user, pass string
	var err error
	switch mech {
	case "PLAIN":
		resp := initial
		if resp == "" {
			if resp, err = s.authLine(""); err != nil {
				return s.authEnd(err)
			}
		}
		if resp == "=" { // RFC 4954: an empty initial response
			resp = ""
		}
		user, pass, err = parsePlain(resp)
	case "LOGIN":
		u := initial
		if u == "" {
			if u, err = s.authLine("VXNlcm5hbWU6"); err != nil { // "Username:"
				return s.authEnd(err)
			}
		}
		if user, err = decodeLogin(u); err != nil {
			break
		}
		p, lerr := s.authLine("UGFzc3dvcmQ6") // "Password:"
		if lerr != nil {
			return s.authEnd(lerr)
		}
		if pass, err = decodeLogin(p); err == nil {
			err = checkCredentials(user, pass)
		}
	default:
		s.reply(replyAuthMech)
		return nil
	}
	if err != nil {
		s.reply(replyAuthSyntax)
		return nil
	}
	// checkpassword programs read at most 512 bytes; longer credentials cannot
	// be right, and count as a failure rather than a checkpassword error.
	if len(user)+len(pass)+3 > maxCheckpasswordInput {
		return s.authFailed(user, mech)
	}
	switch err := s.cfg.Auth(user, pass); {
	case errors.Is(err, ErrAuthFailed):
		return s.authFailed(user, mech)
	case err != nil:
		s.logf("auth temporary failure remote=%s user=%s mech=%s: %s", safe(s.remoteIP()), strconv.Quote(sanitize(user)), mech, sanitize(err.Error()))
		s.reply(replyAuthTemp)
		return nil
	}
	if !s.plugins(spp.Auth, map[string]string{"SMTPAUTHUSER": user}) {
		return s.afterPlugins()
	}
	s.authUser = user
	s.pluginEnv["SMTPAUTHUSER"] = user
	if !s.relaySet {
		s.relay, s.relaySet = "", true
	}
	s.logf("auth ok remote=%s user=%s mech=%s", safe(s.remoteIP()), strconv.Quote(sanitize(user)), mech)
	s.reply(replyAuthOK)
	return nil
}

// authFailed answers a refused password: logged, counted, and after
// authFailsPerSession failures the connection is closed.
func (s *session) authFailed(user, mech string) error {
	s.authFails++
	n := s.authFails
	if s.cfg.AuthLimit != nil {
		n = s.cfg.AuthLimit.Fail(s.cfg.RemoteIP)
	}
	s.logf("auth failed remote=%s user=%s mech=%s failures=%d", safe(s.remoteIP()), strconv.Quote(sanitize(user)), mech, n)
	if s.authFails >= authFailsPerSession {
		s.end = "too many failed authentications"
		s.reply(replyAuthTooMany)
		return errHangup
	}
	s.reply(replyAuthFailed)
	return nil
}

// errAuthCancelled is the client's "*".
var errAuthCancelled = errors.New("cancelled")

// authLine sends a 334 challenge and reads the client's answer.
func (s *session) authLine(challenge string) (string, error) {
	s.bw.WriteString("334 " + challenge + "\r\n")
	line, err := s.readLine()
	if err != nil {
		return "", err
	}
	if line == "*" {
		return "", errAuthCancelled
	}
	return strings.TrimSpace(line), nil
}

func (s *session) authEnd(err error) error {
	switch err {
	case errAuthCancelled:
		s.reply(replyAuthCancelled)
		return nil
	case errLineTooLong:
		s.reply(replyAuthSyntax)
		return nil
	case errBare:
		s.end = "bare CR or LF"
		s.reply(replyBareCommand)
		return errHangup
	}
	return err
}
