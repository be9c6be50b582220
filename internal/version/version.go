// Package version reports the build's version, commit and Go toolchain.
// Version and Commit are set at link time by the Makefile (-ldflags -X).
package version

import (
	"fmt"
	"regexp"
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

// imageTag is the grammar of an image reference's tag (OCI distribution).
var imageTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// TagFor is the image tag of version v: v itself when it is a valid tag,
// else "dev". `make images` tags the images with it and `weft install`
// defaults to it, so a CLI and the images built from the same tree match.
func TagFor(v string) string {
	if imageTag.MatchString(v) {
		return v
	}
	return "dev"
}

// ValidTag reports whether s is a valid image tag.
func ValidTag(s string) bool { return imageTag.MatchString(s) }
