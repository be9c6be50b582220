package cluster

import (
	"slices"
	"sort"
)

// newView builds the load-balancing state for ms at the current health:
// hosts that EDS marks unhealthy or outlier detection ejected are left
// out, unless too few remain.
//
// Priorities: the lowest priority level with a healthy host takes all
// traffic (a simplification of Envoy's overprovisioned spill-over).
// Panic mode (Envoy's healthy_panic_threshold, default 50%): when the
// healthy share of that level falls below the threshold, balance over all
// of its hosts, healthy or not.
func (sh *shared) newView(ms []member) *view {
	v := &view{members: ms, gen: sh.healthGen.Load()}
	if len(ms) == 0 {
		return v
	}
	prios := map[uint32][]member{}
	for _, m := range ms {
		prios[m.priority] = append(prios[m.priority], m)
	}
	levels := make([]uint32, 0, len(prios))
	for p := range prios {
		levels = append(levels, p)
	}
	slices.Sort(levels)
	level := prios[levels[0]]
	for _, p := range levels {
		if countHealthy(prios[p]) > 0 {
			level = prios[p]
			break
		}
	}
	healthy := make([]member, 0, len(level))
	for _, m := range level {
		if m.healthy && !m.h.od.ejected() {
			healthy = append(healthy, m)
		}
	}
	use := healthy
	if float64(len(healthy))*100 < sh.cfg.panicThreshold*float64(len(level)) || len(healthy) == 0 {
		v.panic = true
		use = level
		if len(healthy) == 0 && sh.cfg.panicThreshold == 0 {
			// Panic mode disabled (Istio sets 0 with outlier detection):
			// no healthy host means no host.
			return v
		}
	}
	v.pick = sh.pickerFor(use, level)
	return v
}

func countHealthy(ms []member) int {
	n := 0
	for _, m := range ms {
		if m.healthy && !m.h.od.ejected() {
			n++
		}
	}
	return n
}

// pickerFor builds the picker over use; with locality weighting, a
// locality's weight is scaled by its healthy share (Envoy's effective
// locality weight) computed against the full level.
func (sh *shared) pickerFor(use, level []member) picker {
	if !sh.cfg.localityWeighted || sh.cfg.lb == lbRingHash || sh.cfg.lb == lbMaglev {
		return newPicker(sh.cfg, toWeighted(use))
	}
	byLoc := map[string][]member{}
	total := map[string]int{}
	for _, m := range use {
		byLoc[m.locality] = append(byLoc[m.locality], m)
	}
	for _, m := range level {
		total[m.locality]++
	}
	locs := make([]string, 0, len(byLoc))
	for l := range byLoc {
		locs = append(locs, l)
	}
	sort.Strings(locs)
	var lw []weighted
	var pickers []picker
	for _, l := range locs {
		ms := byLoc[l]
		// Effective weight = locality weight × available share, in 1/1000.
		w := uint32(uint64(ms[0].lweight) * 1000 * uint64(len(ms)) / uint64(total[l]))
		if w == 0 {
			continue // Envoy: weight 0 localities get no traffic
		}
		lw = append(lw, weighted{weight: w})
		pickers = append(pickers, newPicker(sh.cfg, toWeighted(ms)))
	}
	if len(pickers) == 0 {
		return nil
	}
	// Reuse the smooth weighted sequence over locality indexes.
	idx := make([]*host, len(lw))
	for i := range lw {
		idx[i] = &host{addr: locs[i]}
		lw[i].h = idx[i]
	}
	rr := newRoundRobin(lw)
	lp := &localityPicker{}
	for _, h := range rr.seq {
		lp.seq = append(lp.seq, pickers[slices.Index(idx, h)])
	}
	return lp
}

func toWeighted(ms []member) []weighted {
	out := make([]weighted, len(ms))
	for i, m := range ms {
		out[i] = weighted{h: m.h, weight: m.weight}
	}
	return out
}

// view returns the current view, rebuilding it first when outlier
// detection changed a host's state since it was built.
func (c *Cluster) view() *view {
	v := c.cur.Load()
	if c.sh.od == nil {
		return v
	}
	c.sh.od.maybeSweep()
	if v.gen == c.sh.healthGen.Load() {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v = c.cur.Load()
	if v.gen != c.sh.healthGen.Load() {
		v = c.sh.newView(v.members)
		c.cur.Store(v)
	}
	return v
}
