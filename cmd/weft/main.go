// Command weft is the Weft CLI: analyze, control plane, demo and friends.
package main

import (
	"os"

	"github.com/weftmesh/weft/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
