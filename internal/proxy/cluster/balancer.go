package cluster

import (
	"math/rand/v2"
	"sync/atomic"
)

// A picker chooses a host from an immutable list built for one health
// state (see view). Pickers are safe for concurrent use without locks.
type picker interface {
	pick(hash uint64, hasHash bool) *host
}

// weighted is a host with its effective load-balancing weight.
type weighted struct {
	h      *host
	weight uint32
}

func newPicker(s *settings, hosts []weighted) picker {
	switch s.lb {
	case lbLeastRequest:
		return newLeastRequest(hosts, s.lrChoices)
	case lbRandom:
		return newRandom(hosts)
	case lbRingHash:
		return newRing(hosts, s.ringMin, s.ringMax)
	case lbMaglev:
		return newMaglev(hosts, s.maglevSize)
	default:
		return newRoundRobin(hosts)
	}
}

// roundRobin is weighted round robin over a precomputed smooth sequence
// (nginx's smooth weighted round robin, run once at build time), walked
// with an atomic cursor: equal weights give plain rotation, weights 3:1
// give a b a a, never a a a b.
type roundRobin struct {
	seq  []*host
	next atomic.Uint64
}

const maxRRSequence = 4096

func newRoundRobin(hosts []weighted) *roundRobin {
	ws := normalizeWeights(hosts, maxRRSequence)
	var total int64
	for _, w := range ws {
		total += int64(w)
	}
	seq := make([]*host, 0, total)
	cur := make([]int64, len(hosts))
	for range total {
		best := 0
		for i := range hosts {
			cur[i] += int64(ws[i])
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		seq = append(seq, hosts[best].h)
	}
	rr := &roundRobin{seq: seq}
	// Start at a random offset so that many proxies do not hit the same
	// host first (Envoy does the same).
	if len(seq) > 0 {
		rr.next.Store(rand.Uint64N(uint64(len(seq))))
	}
	return rr
}

func (r *roundRobin) pick(uint64, bool) *host {
	n := r.next.Add(1)
	return r.seq[n%uint64(len(r.seq))]
}

// normalizeWeights divides weights by their gcd and, if their sum still
// exceeds limit, scales them down proportionally (never below 1).
func normalizeWeights(hosts []weighted, limit int64) []uint32 {
	ws := make([]uint32, len(hosts))
	var g uint32
	var sum int64
	for i, h := range hosts {
		w := max(h.weight, 1)
		ws[i] = w
		g = gcd(g, w)
	}
	for i := range ws {
		ws[i] /= g
		sum += int64(ws[i])
	}
	if sum > limit {
		for i := range ws {
			ws[i] = uint32(max(int64(ws[i])*limit/sum, 1))
		}
	}
	return ws
}

func gcd(a, b uint32) uint32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// random picks by weight with a cumulative table and binary search.
type random struct {
	hosts []*host
	cum   []uint64
}

func newRandom(hosts []weighted) *random {
	r := &random{}
	var sum uint64
	for _, h := range hosts {
		sum += uint64(max(h.weight, 1))
		r.hosts = append(r.hosts, h.h)
		r.cum = append(r.cum, sum)
	}
	return r
}

func (r *random) pick(uint64, bool) *host {
	x := rand.Uint64N(r.cum[len(r.cum)-1])
	lo, hi := 0, len(r.cum)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if r.cum[mid] > x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return r.hosts[lo]
}

// leastRequest is Envoy's power-of-N-choices: sample choice_count hosts at
// random and take the one with the fewest active requests. With unequal
// weights the sample is drawn by weight and compared by active/weight
// (Envoy's weighted variant with active_request_bias 1).
type leastRequest struct {
	hosts    []*host
	weights  []uint32
	choices  int
	weighted *random // nil when all weights are equal
}

func newLeastRequest(hosts []weighted, choices int) *leastRequest {
	lr := &leastRequest{choices: choices}
	equal := true
	for _, h := range hosts {
		lr.hosts = append(lr.hosts, h.h)
		lr.weights = append(lr.weights, max(h.weight, 1))
		if h.weight != hosts[0].weight {
			equal = false
		}
	}
	if !equal {
		lr.weighted = newRandom(hosts)
	}
	return lr
}

func (l *leastRequest) pick(uint64, bool) *host {
	if len(l.hosts) == 1 {
		return l.hosts[0]
	}
	var best *host
	var bestScore float64
	for range l.choices {
		var h *host
		var w uint32 = 1
		if l.weighted != nil {
			i := l.weighted.index(rand.Uint64N(l.weighted.cum[len(l.weighted.cum)-1]))
			h, w = l.hosts[i], l.weights[i]
		} else {
			h = l.hosts[rand.IntN(len(l.hosts))]
		}
		score := float64(h.active.Load()+1) / float64(w)
		if best == nil || score < bestScore {
			best, bestScore = h, score
		}
	}
	return best
}

func (r *random) index(x uint64) int {
	lo, hi := 0, len(r.cum)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if r.cum[mid] > x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// localityPicker first picks a locality by effective weight (smooth
// weighted round robin), then a host inside it with the cluster's policy
// (Envoy's locality weighted load balancing).
type localityPicker struct {
	seq  []picker
	next atomic.Uint64
}

func (l *localityPicker) pick(hash uint64, hasHash bool) *host {
	n := l.next.Add(1)
	return l.seq[n%uint64(len(l.seq))].pick(hash, hasHash)
}
