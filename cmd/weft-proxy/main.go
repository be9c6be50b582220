// Command weft-proxy is Weft's data plane: the sidecar and gateway proxy.
// It keeps lean imports: no client-go, no Istio API types (see internal/archtest).
package main

import (
	"fmt"
	"os"

	"github.com/weftmesh/weft/internal/version"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println(version.String("weft-proxy"))
		return
	}
	fmt.Fprintln(os.Stderr, "usage: weft-proxy version|sidecar|router [flags]")
	os.Exit(2)
}
