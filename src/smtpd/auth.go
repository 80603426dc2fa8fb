package smtpd

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
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
)

// auth runs the AUTH command: PLAIN (RFC 4616) or LOGIN, then the checkpassword
// program, then the [auth] plugins. Success lets the client relay, as RELAYCLIENT
// does.
func (s *session) auth(arg string) error {
	if s.cfg.Auth == nil {
		s.reply(replyUnimplemented)
		return nil
	}
	if s.authUser != "" {
		s.reply(replyAuthAgain)
		return nil
	}
	if s.inMail {
		s.reply(replyAuthInMail)
		return nil
	}
	mech, initial, _ := strings.Cut(strings.TrimSpace(arg), " ")
	var user, pass string
	var err error
	switch strings.ToUpper(mech) {
	case "PLAIN":
		resp := initial
		if resp == "" {
			if resp, err = s.authLine(""); err != nil {
				return s.authEnd(err)
			}
		}
		b, derr := base64.StdEncoding.DecodeString(resp)
		parts := bytes.Split(b, []byte{0})
		if derr != nil || len(parts) != 3 {
			s.reply(replyAuthSyntax)
			return nil
		}
		user, pass = string(parts[1]), string(parts[2])
	case "LOGIN":
		u := initial
		if u == "" {
			if u, err = s.authLine("VXNlcm5hbWU6"); err != nil { // "Username:"
				return s.authEnd(err)
			}
		}
		ub, derr := base64.StdEncoding.DecodeString(u)
		if derr != nil {
			s.reply(replyAuthSyntax)
			return nil
		}
		p, err := s.authLine("UGFzc3dvcmQ6") // "Password:"
		if err != nil {
			return s.authEnd(err)
		}
		pb, derr := base64.StdEncoding.DecodeString(p)
		if derr != nil {
			s.reply(replyAuthSyntax)
			return nil
		}
		user, pass = string(ub), string(pb)
	default:
		s.reply(replyAuthMech)
		return nil
	}
	if user == "" || strings.ContainsRune(user, 0) || strings.ContainsRune(pass, 0) {
		s.reply(replyAuthSyntax)
		return nil
	}
	switch err := s.cfg.Auth(user, pass); {
	case errors.Is(err, ErrAuthFailed):
		s.logf("auth failed remote=%s user=%q", safe(s.remoteIP()), user)
		s.reply(replyAuthFailed)
		return nil
	case err != nil:
		s.logf("auth temporary failure remote=%s user=%q: %s", safe(s.remoteIP()), user, sanitize(err.Error()))
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
	s.reply(replyAuthOK)
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
