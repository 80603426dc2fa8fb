package inject

import (
	"fmt"
	"io"
	"strings"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/queueclient"
)

// Main is the qmail-inject program: args are its arguments after the program name,
// env its environment. It returns the exit code: 0, 100 (bad usage or a message that
// cannot be sent) or 111 (temporary failure), with a message on stderr.
func Main(args []string, env Env, stdin io.Reader, stdout, stderr io.Writer) int {
	err := inject(args, env, stdin, stdout)
	if err == nil {
		return 0
	}
	code := 111
	if e, ok := err.(*Error); ok {
		code = e.Code
	}
	// A quoted header line brings its own newline.
	fmt.Fprintf(stderr, "qmail-inject: fatal: %s\n", strings.TrimRight(err.Error(), "\n"))
	return code
}

func inject(args []string, env Env, stdin io.Reader, stdout io.Writer) error {
	ij, err := New(args, env, control.Default())
	if err != nil {
		return err
	}
	open := func() (Queue, error) {
		c, err := queueclient.Open()
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	return ij.Run(stdin, open, stdout)
}
