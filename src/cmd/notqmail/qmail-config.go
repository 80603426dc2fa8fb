package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/notqmail/notqmail/src/control"
	"github.com/notqmail/notqmail/src/home"
	"github.com/notqmail/notqmail/src/hostconfig"
	"github.com/notqmail/notqmail/src/ids"
)

func init() { register("qmail-config", configMain) }

// configMain is qmail-config [fqdn]: the first configuration, writing only what is absent.
func configMain(args []string) int {
	if len(args) > 1 || len(args) == 1 && (args[0] == "" || args[0][0] == '-') {
		fmt.Fprintln(os.Stderr, "usage: qmail-config [fqdn]")
		return 100
	}
	var fqdn string
	if len(args) == 1 {
		fqdn = hostconfig.Normalize(args[0])
		if err := hostconfig.CheckName(fqdn); err != nil {
			fmt.Fprintln(os.Stderr, "qmail-config:", err)
			return 100
		}
	} else {
		h, err := os.Hostname()
		if err != nil {
			fmt.Fprintln(os.Stderr, "qmail-config: unable to get the host name:", err)
			return 111
		}
		if fqdn, err = hostconfig.HostFQDN(h, hostconfig.SystemResolver); err != nil {
			fmt.Fprintln(os.Stderr, "qmail-config: the host name is unusable, give one as argument:", err)
			return 100
		}
		if strings.HasSuffix(fqdn, "."+hostconfig.NoDomain) {
			fmt.Fprintf(os.Stderr, "qmail-config: warning: the host name %s has no domain; using %s (run qmail-config with the real name after removing the files it wrote)\n", h, fqdn)
		}
	}
	files, err := hostconfig.ControlFiles(fqdn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "qmail-config:", err)
		return 100
	}
	var owner *hostconfig.Owner
	if !home.InSandbox() && os.Geteuid() == 0 {
		a, err := ids.User(ids.Alias)
		if err != nil {
			fmt.Fprintln(os.Stderr, "qmail-config:", err)
			return 111
		}
		owner = &hostconfig.Owner{UID: a.UID, GID: a.GID}
	}
	fmt.Printf("qmail-config: fully qualified host name %s\n", fqdn)
	if _, err := hostconfig.Apply(control.Default().Path, home.Path("alias"), files, owner, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "qmail-config:", err)
		return 111
	}
	return 0
}
