//go:build race

package e2e

// The race detector multiplies memory and CPU: the scale test shrinks.
const cpScaleServices, cpScaleProxies = 20, 20
