// Package examples embeds the base configuration `weft demo` seeds into its
// control plane: Bookinfo, httpbin, tcp-echo, curl, the gateways' Services
// and the mesh config. Task rules (tasks/) and invalid/ are not embedded:
// tasks replace each other, invalid/ is meant to fail.
package examples

import "embed"

// Base is the demo's seed configuration.
//
//go:embed bookinfo curl egress httpbin tcp-echo mesh.yaml
var Base embed.FS
