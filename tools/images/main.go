// Command images writes Weft's container images as OCI tarballs
// (`make images`): one multi-arch index per image in -out.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/weftmesh/weft/internal/images"
)

func main() {
	out := flag.String("out", "out/images", "directory for the tarballs")
	arches := flag.String("arch", "amd64,arm64", "comma-separated GOARCH list")
	root := flag.String("root", ".", "the module to build from")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	imgs, err := images.Build(ctx, *root, *out, strings.Split(*arches, ",")...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
	for _, im := range imgs {
		fmt.Printf("%s\t%s\n", im.Ref, im.Path)
	}
}
