// Package version reports the build's version, commit and Go toolchain.
// Version and Commit are set at link time by the Makefile (-ldflags -X).
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

var (
	Version = "dev"
	Commit  = ""
)

// String is the one-line form both binaries print for `version`.
func String(binary string) string {
	return fmt.Sprintf("%s version %s (commit %s, %s %s/%s)", binary, Version, commit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func commit() string {
	if Commit != "" {
		return Commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}
