// Command coredns is CoreDNS with only the plugins a test node needs:
// cluster DNS from the kubernetes plugin (against the test API server),
// with bind, errors, log, health, ready, cache and loop. Linking a few plugins
// instead of CoreDNS's full list keeps the build small; it has its own
// module because CoreDNS pins its own client-go.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The plugins in the order CoreDNS runs them (its plugin.cfg order).
var directives = []string{"bind", "ready", "health", "errors", "log", "cache", "kubernetes", "loop"}

func main() {
	dnsserver.Directives = directives
	coremain.Run()
}
