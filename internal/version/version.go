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

// TagFor is the image tag of version v: v itself when it is a valid tag,
// else "dev". `make images` tags the images with it and `weft install`
// defaults to it, so a CLI and the images built from the same tree match.
func TagFor(v string) string {
	if ValidTag(v) {
		return v
	}
	return "dev"
}

// ValidTag reports whether s is a valid image tag: the OCI distribution
// grammar [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}. Checked by hand: as a regexp
// its {0,127} compiled at every start of both binaries (118 KB, 1,694
// allocations in weft-proxy's init).
func ValidTag(s string) bool {
	if len(s) == 0 || len(s) > 128 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
