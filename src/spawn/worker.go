package spawn

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
)

// The qmail-local worker protocol. qmail-lspawn and a worker (qmail-local --worker,
// running as one account) share a SOCK_SEQPACKET socketpair, the worker's end on its
// descriptor 3, so every request and reply is one packet and needs no framing.
//
// A request is an 8-byte request id, then qmail-local's 8 arguments (user homedir
// local dash ext domain sender defaultdelivery), each \0-terminated, with two
// descriptors attached (SCM_RIGHTS): the message, open for reading, and the write end
// of a pipe that stands for qmail-local's standard output and error. The worker writes
// the delivery's report there and hands the same descriptor to the programs it runs,
// exactly as an exec'ed qmail-local would, and qmail-lspawn collects it as it collects
// an exec'ed qmail-local's output (truncReport, outputGrace).
//
// A reply is the request id and qmail-local's exit code (4 bytes), sent once the
// worker has closed its copy of the pipe. Deliveries run concurrently, so replies come
// back in completion order. When qmail-lspawn shuts down its end for writing, the
// worker finishes the deliveries in flight and exits 0. A worker that goes away with
// deliveries in flight has crashed as far as they are concerned.

const (
	// WorkerFD is the worker's end of the socketpair.
	WorkerFD = 3
	// WorkerFlag is qmail-local's first argument in worker mode.
	WorkerFlag = "--worker"

	idLen    = 8
	replyLen = idLen + 4
	// requestMax bounds a request packet; larger ones (absurdly long addresses) go
	// the exec way, which has no such limit.
	requestMax = 48 << 10
	// nargs is the number of qmail-local arguments in a request.
	nargs = 8
)

// encodeRequest builds a request packet; ok is false if the arguments cannot travel
// in one (too long, or holding a \0, which exec would refuse as well).
func encodeRequest(id uint64, args []string) ([]byte, bool) {
	if len(args) != nargs {
		return nil, false
	}
	n := idLen
	for _, a := range args {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, false
		}
		n += len(a) + 1
	}
	if n > requestMax {
		return nil, false
	}
	b := make([]byte, idLen, n)
	binary.BigEndian.PutUint64(b, id)
	for _, a := range args {
		b = append(b, a...)
		b = append(b, 0)
	}
	return b, true
}

// decodeRequest is encodeRequest's inverse.
func decodeRequest(b []byte) (id uint64, args []string, ok bool) {
	if len(b) < idLen {
		return 0, nil, false
	}
	id = binary.BigEndian.Uint64(b)
	rest := string(b[idLen:])
	if !strings.HasSuffix(rest, "\x00") {
		return id, nil, false
	}
	args = strings.Split(rest[:len(rest)-1], "\x00")
	if len(args) != nargs {
		return id, nil, false
	}
	return id, args, true
}

func encodeReply(id uint64, code int) []byte {
	b := make([]byte, replyLen)
	binary.BigEndian.PutUint64(b, id)
	binary.BigEndian.PutUint32(b[idLen:], uint32(int32(code)))
	return b
}

func decodeReply(b []byte) (id uint64, code int, ok bool) {
	if len(b) != replyLen {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(b), int(int32(binary.BigEndian.Uint32(b[idLen:]))), true
}

// WorkerDeliver carries out one delivery in a worker: args are qmail-local's 8
// arguments, msg the message and out qmail-local's standard output and error. It
// returns qmail-local's exit code.
type WorkerDeliver func(args []string, msg, out *os.File) int

// ServeWorker is the worker side: it reads requests from conn (the worker's end of
// the socketpair), runs each in its own goroutine and replies. It returns once conn
// has ended and every delivery has replied; an error means the protocol broke, and
// the caller should exit without further ado (qmail-lspawn then reports every delivery
// still in flight as crashed, and retries them later).
func ServeWorker(conn *net.UnixConn, deliver WorkerDeliver) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	buf := make([]byte, requestMax+1)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	for {
		// net's ReadMsgUnix passes MSG_CMSG_CLOEXEC: a concurrent delivery's program
		// must never inherit another delivery's descriptors.
		n, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		fds, ferr := parseRights(oob[:oobn])
		id, args, ok := decodeRequest(buf[:n])
		if ferr != nil || len(fds) != 2 || !ok || flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) != 0 {
			for _, fd := range fds {
				syscall.Close(fd)
			}
			return errors.New("qmail-local: malformed worker request")
		}
		msg := os.NewFile(uintptr(fds[0]), "message")
		out := os.NewFile(uintptr(fds[1]), "output")
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := deliver(args, msg, out)
			msg.Close()
			// Closed before the reply, so qmail-lspawn sees the end of the output
			// unless a program left something running in the background.
			out.Close()
			conn.Write(encodeReply(id, code))
		}()
	}
}

func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		f, err := syscall.ParseUnixRights(&m)
		if err != nil {
			return fds, err
		}
		fds = append(fds, f...)
	}
	return fds, nil
}
