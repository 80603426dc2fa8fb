// Package version holds the version string stamped into every program at build time
// (go build -ldflags "-X github.com/notqmail/notqmail/src/version.Version=...").
package version

// Version is the release this binary was built from; "dev" for an unstamped build.
var Version = "dev"
