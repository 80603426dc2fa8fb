package send

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/notqmail/notqmail/src/home"
)

// QueueInjector queues messages by running qmail-queue ($QMAILQUEUE when set, as every
// qmail program that queues mail does) with the message on fd 0, the envelope on fd 1
// and the custom-error pipe on fd 6, in the qmail home.
type QueueInjector struct {
	Program string // empty: $QMAILQUEUE, else $QMAILHOME/bin/qmail-queue
}

func (q QueueInjector) program() string {
	if q.Program != "" {
		return q.Program
	}
	if p := os.Getenv("QMAILQUEUE"); p != "" {
		return p
	}
	return home.Path("bin", "qmail-queue")
}

// Inject implements Injector. A read error on msg aborts the queueing: qmail-queue sees
// the envelope end early and queues nothing.
func (q QueueInjector) Inject(msg io.Reader, sender string, recips []string) (int, error) {
	bodyR, bodyW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	envR, envW, err := os.Pipe()
	if err != nil {
		bodyR.Close()
		bodyW.Close()
		return 0, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		bodyR.Close()
		bodyW.Close()
		envR.Close()
		envW.Close()
		return 0, err
	}
	cmd := exec.Command(q.program())
	cmd.Dir = home.Dir()
	cmd.Stdin = bodyR
	cmd.Stdout = envR
	cmd.ExtraFiles = []*os.File{nil, nil, nil, errW} // fd 6
	startErr := cmd.Start()
	bodyR.Close()
	envR.Close()
	errW.Close()
	if startErr != nil {
		bodyW.Close()
		envW.Close()
		errR.Close()
		return 0, startErr
	}
	custom := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(errR, 1024))
		errR.Close()
		custom <- b
	}()
	_, copyErr := io.Copy(bodyW, msg)
	bodyW.Close()
	if copyErr == nil {
		var env bytes.Buffer
		env.WriteString("F" + sender + "\x00")
		for _, r := range recips {
			env.WriteString("T" + r + "\x00")
		}
		env.WriteByte(0)
		_, copyErr = envW.Write(env.Bytes())
	}
	envW.Close()
	waitErr := cmd.Wait()
	msgErr := <-custom
	if copyErr != nil {
		return 0, fmt.Errorf("qmail-queue: %w", copyErr)
	}
	if waitErr != nil {
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			detail := strings.TrimSpace(string(msgErr))
			return 0, fmt.Errorf("qmail-queue exited %d %s", ee.ExitCode(), detail)
		}
		return 0, waitErr
	}
	return cmd.Process.Pid, nil
}
