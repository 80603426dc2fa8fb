package smtpd

import (
	"bufio"
	"errors"
	"io"
)

var (
	errBare        = errors.New("bare CR or LF")
	errLineTooLong = errors.New("line too long")
)

// crlfState checks that every CR is followed by LF and every LF follows a CR, across
// the chunks of a stream.
type crlfState struct{ pendingCR bool }

// scan checks one chunk; it reports false at the first bare CR or bare LF.
func (c *crlfState) scan(b []byte) bool {
	for _, ch := range b {
		if c.pendingCR {
			if ch != '\n' {
				return false
			}
			c.pendingCR = false
			continue
		}
		switch ch {
		case '\r':
			c.pendingCR = true
		case '\n':
			return false
		}
	}
	return true
}

// readCommandLine reads one CRLF-terminated line of at most max bytes (CRLF
// included) and returns it without the CRLF. A bare CR or LF anywhere is errBare. A
// longer line is read to its end, discarded and reported as errLineTooLong, so the
// memory used stays bounded and the session stays in step.
func readCommandLine(br *bufio.Reader, max int) (string, error) {
	var line []byte
	var st crlfState
	tooLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if !st.scan(chunk) {
			return "", errBare
		}
		if !tooLong {
			if len(line)+len(chunk) > max {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && (len(line) > 0 || len(chunk) > 0) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		break
	}
	if tooLong {
		return "", errLineTooLong
	}
	return string(line[:len(line)-2]), nil
}

type dataLimits struct {
	maxBytes  int64 // 0: no limit
	maxHeader int64
}

type dataResult struct {
	size         int64 // bytes of the message as sent, CRLF counted as two (RFC 1870)
	hops         int   // Received: and Delivered-To: lines in the header
	tooBig       bool
	headerTooBig bool
	bare         bool  // a bare CR or LF: the end of the message cannot be trusted
	err          error // the connection failed before the end
}

// readData reads a message after "354" up to the line "." alone, removes the dot
// stuffing, turns CRLF into LF (qmail's queue format) and streams the result to w.
// Only CRLF.CRLF ends the message; any bare CR or LF stops reading at once. Past the
// size limit the rest is read and dropped so the reply comes in step. before is
// called before every read that may block (to set the timeout).
func readData(br *bufio.Reader, w io.Writer, lim dataLimits, before func()) dataResult {
	var res dataResult
	var st crlfState
	lineStart, inHeader := true, true
	var headerBytes int64
	for {
		if before != nil && br.Buffered() == 0 {
			before()
		}
		chunk, err := br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			res.err = err
			return res
		}
		if lineStart {
			if len(chunk) == 3 && chunk[0] == '.' && chunk[1] == '\r' && chunk[2] == '\n' {
				return res
			}
			if chunk[0] == '.' {
				chunk = chunk[1:]
				if len(chunk) == 0 {
					continue
				}
			}
			if inHeader {
				if len(chunk) == 2 && chunk[0] == '\r' && chunk[1] == '\n' {
					inHeader = false
				} else if hasPrefixFold(string(chunk[:min(len(chunk), 13)]), "received:") ||
					hasPrefixFold(string(chunk[:min(len(chunk), 13)]), "delivered-to:") {
					res.hops++
				}
			}
		}
		if !st.scan(chunk) {
			res.bare = true
			return res
		}
		res.size += int64(len(chunk))
		if inHeader {
			headerBytes += int64(len(chunk))
			if headerBytes > lim.maxHeader {
				res.headerTooBig = true
			}
		}
		if lim.maxBytes > 0 && res.size > lim.maxBytes {
			res.tooBig = true
		}
		lineStart = chunk[len(chunk)-1] == '\n'
		if !res.tooBig && !res.headerTooBig && res.hops < maxHops {
			// Every CR was checked to start a CRLF: drop it and keep the LF.
			switch {
			case lineStart && len(chunk) >= 2:
				w.Write(chunk[:len(chunk)-2])
				w.Write(lf)
			case lineStart:
				w.Write(lf) // the LF of a CRLF split across reads
			case chunk[len(chunk)-1] == '\r':
				w.Write(chunk[:len(chunk)-1])
			default:
				w.Write(chunk)
			}
		}
	}
}

var lf = []byte{'\n'}
