// Command weft-sample runs Weft's built-in sample apps in the sample
// images (`weft-sample productpage …`); started through a symlink named
// curl or sleep it is that tool (the curl image). It keeps to the sample
// packages, so the images stay small.
package main

import (
	"os"

	"github.com/weftmesh/weft/internal/samples/command"
)

func main() {
	os.Exit(command.Main(os.Args[0], os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
