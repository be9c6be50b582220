package cluster

import (
	"math/rand/v2"
)

// maglev is Envoy's MAGLEV consistent hashing (Google's Maglev paper): a
// lookup table of prime size where each host fills slots in its own
// permutation order, weighted; a key picks table[key % size]. Changing one
// host moves few keys, and lookups are O(1).
type maglev struct {
	table []*host
}

func newMaglev(hosts []weighted, size uint64) *maglev {
	n := len(hosts)
	offsets := make([]uint64, n)
	skips := make([]uint64, n)
	weights := make([]float64, n)
	targets := make([]float64, n)
	next := make([]uint64, n)
	var maxW float64
	for i, h := range hosts {
		offsets[i] = hashString(h.h.addr) % size
		skips[i] = hashString(h.h.addr+"#skip")%(size-1) + 1
		weights[i] = float64(max(h.weight, 1))
		maxW = max(maxW, weights[i])
	}
	table := make([]*host, size)
	filled := uint64(0)
	for iter := 0; filled < size; iter++ {
		for i := range hosts {
			// Weighted Maglev: a host takes a turn only as often as its
			// weight relative to the heaviest host.
			targets[i] += weights[i] / maxW
			if targets[i] < 1 {
				continue
			}
			targets[i]--
			for {
				slot := (offsets[i] + next[i]*skips[i]) % size
				next[i]++
				if table[slot] == nil {
					table[slot] = hosts[i].h
					filled++
					break
				}
			}
			if filled == size {
				break
			}
		}
	}
	return &maglev{table: table}
}

func (m *maglev) pick(hash uint64, hasHash bool) *host {
	if !hasHash {
		hash = randomHash()
	}
	return m.table[hash%uint64(len(m.table))]
}

// randomHash stands in for a missing hash key: Envoy then picks a random
// host for consistent-hash policies.
func randomHash() uint64 { return rand.Uint64() }
