package cluster

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"sort"
)

// ring is Envoy's RING_HASH (ketama-style consistent hashing). Each host
// gets ring entries in proportion to its weight, at positions hash(
// "addr_i"). Envoy hashes with xxHash64; weft-proxy uses 64-bit FNV-1a
// followed by a splitmix64 finalizer (for good spread), so positions are
// stable across processes and restarts but differ from Envoy's.
type ring struct {
	hashes []uint64
	hosts  []*host
}

func hashString(s string) uint64 {
	f := fnv.New64a()
	f.Write([]byte(s))
	return mix64(f.Sum64())
}

// mix64 is the splitmix64 finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func newRing(hosts []weighted, minSize, maxSize uint64) *ring {
	var total float64
	minW := math.Inf(1)
	for _, h := range hosts {
		w := float64(max(h.weight, 1))
		total += w
		minW = min(minW, w/1)
	}
	// Like Envoy: scale so the least-weighted host gets at least one entry
	// and the ring has at least minSize entries, capped at maxSize.
	scale := min(math.Ceil(minW/total*float64(minSize))*total/minW, float64(maxSize))
	scale /= total
	r := &ring{}
	type entry struct {
		hash uint64
		h    *host
	}
	var entries []entry
	var buf []byte
	var current, target float64
	for _, h := range hosts {
		target += scale * float64(max(h.weight, 1))
		for i := 0; current < target; i++ {
			buf = append(buf[:0], h.h.addr...)
			buf = append(buf, '_')
			buf = binary.AppendUvarint(buf, uint64(i))
			entries = append(entries, entry{hashString(string(buf)), h.h})
			current++
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].hash < entries[j].hash })
	for _, e := range entries {
		r.hashes = append(r.hashes, e.hash)
		r.hosts = append(r.hosts, e.h)
	}
	return r
}

func (r *ring) pick(hash uint64, hasHash bool) *host {
	if !hasHash {
		hash = randomHash()
	}
	i := sort.Search(len(r.hashes), func(i int) bool { return r.hashes[i] >= hash })
	if i == len(r.hashes) {
		i = 0
	}
	return r.hosts[i]
}
