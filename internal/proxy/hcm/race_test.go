//go:build race

package hcm

// raceEnabled: the race detector changes memory figures.
const raceEnabled = true
