//go:build !race

package e2e

// Scale test size: 200 services, 400 in-process proxies.
const cpScaleServices, cpScaleProxies = 200, 400
