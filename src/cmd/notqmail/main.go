// Command notqmail is the multi-call binary that serves most of the MTA's programs.
//
// It dispatches on the name it was run as (argv[0], normally a symlink such as
// bin/qmail-send -> notqmail) or, when run as "notqmail", on its first argument:
//
//	qmail-showctl
//	notqmail qmail-showctl
//	notqmail --list
//
// qmail-queue is not served here: it is setuid qmailq and lives in its own binary so the
// setuid bit never sits on an inode every other program shares.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/version"
)

// program is one program's entry point: args are its arguments after its name. It
// returns the process exit code.
type program func(args []string) int

var programs = map[string]program{}

// register adds a program to the dispatch table; each program's file calls it from init.
func register(name string, p program) {
	if _, dup := programs[name]; dup {
		panic("notqmail: program registered twice: " + name)
	}
	programs[name] = p
}

// names returns the registered program names in order.
func names() []string {
	var n []string
	for k := range programs {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func main() {
	os.Exit(dispatch(os.Args))
}

func dispatch(argv []string) int {
	if err := home.EnterSandbox(); err != nil {
		fmt.Fprintln(os.Stderr, "notqmail:", err)
		return 111
	}
	name, args := "notqmail", []string(nil)
	if len(argv) > 0 {
		name, args = filepath.Base(argv[0]), argv[1:]
	}
	if p, ok := programs[name]; ok {
		return p(args)
	}
	if len(args) == 0 {
		usage()
		return 100
	}
	switch args[0] {
	case "--list", "-l":
		for _, n := range names() {
			fmt.Println(n)
		}
		return 0
	case "--version", "-V":
		fmt.Println("notqmail", version.Version)
		return 0
	case "--help", "-h":
		usage()
		return 0
	}
	if p, ok := programs[args[0]]; ok {
		return p(args[1:])
	}
	fmt.Fprintf(os.Stderr, "notqmail: unknown program %q (notqmail --list shows them)\n", args[0])
	return 100
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: notqmail PROGRAM [args...] | --list | --version\n"+
		"Each program is also reachable through a link named after it.\n")
}
