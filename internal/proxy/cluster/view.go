package cluster

import (
	"math/rand/v2"
	"slices"
	"sort"
)

// newView builds the load-balancing state for ms at the current health:
// hosts that EDS marks unhealthy or outlier detection ejected are left
// out, unless too few remain. It follows Envoy's priority levels and panic
// threshold (arch_overview/upstream/load_balancing/priority and
// panic_threshold):
//   - a level's health is its healthy share × overprovisioning factor
//     (default 1.4), capped at 100; levels take load in priority order up
//     to their health, normalized when the total is below 100;
//   - when the normalized total health is below 100, a level whose healthy
//     share is below healthy_panic_threshold (default 50%) balances over
//     all its hosts; with no healthy host anywhere, priority 0 takes all
//     traffic in panic, unless the threshold is 0 (panic disabled, what
//     Istio sets with outlier detection): then there is no host (503 UH).
func (c *Cluster) newView(ms []member) *view {
	sh := c.sh
	v := &view{members: ms, gen: sh.healthGen.Load()}
	if len(ms) == 0 {
		return v
	}
	prios := map[uint32][]member{}
	for _, m := range ms {
		prios[m.priority] = append(prios[m.priority], m)
	}
	order := make([]uint32, 0, len(prios))
	for p := range prios {
		order = append(order, p)
	}
	slices.Sort(order)
	type level struct {
		all, healthy []member
		pct, health  int
	}
	levels := make([]level, len(order))
	norm := 0
	for i, p := range order {
		l := level{all: prios[p]}
		for _, m := range l.all {
			if m.healthy && !m.h.od.ejected() {
				l.healthy = append(l.healthy, m)
			}
		}
		l.pct = 100 * len(l.healthy) / len(l.all)
		l.health = min(100, l.pct*int(c.overprov)/100)
		norm += l.health
		levels[i] = l
	}
	norm = min(norm, 100)
	if norm == 0 {
		if sh.cfg.panicThreshold == 0 {
			return v
		}
		v.panic = true
		v.pick = sh.pickerFor(levels[0].all, levels[0].all, c.overprov)
		return v
	}
	var loads []int
	var pickers []picker
	remaining := 100
	for _, l := range levels {
		load := min(l.health*100/norm, remaining)
		if load == 0 {
			continue
		}
		remaining -= load
		use := l.healthy
		if norm < 100 && float64(l.pct) < sh.cfg.panicThreshold {
			v.panic = true
			use = l.all
		}
		p := sh.pickerFor(use, l.all, c.overprov)
		if p == nil {
			continue
		}
		loads = append(loads, load)
		pickers = append(pickers, p)
	}
	switch len(pickers) {
	case 0:
	case 1:
		v.pick = pickers[0]
	default:
		pp := &priorityPicker{pickers: pickers}
		sum := 0
		for _, l := range loads {
			sum += l
			pp.cum = append(pp.cum, sum)
		}
		v.pick = pp
	}
	return v
}

// priorityPicker splits traffic across priority levels by priority load.
type priorityPicker struct {
	cum     []int // cumulative loads
	pickers []picker
}

func (p *priorityPicker) pick(hash uint64, hasHash bool) *host {
	x := rand.IntN(p.cum[len(p.cum)-1])
	for i, c := range p.cum {
		if x < c {
			return p.pickers[i].pick(hash, hasHash)
		}
	}
	return p.pickers[len(p.pickers)-1].pick(hash, hasHash)
}

// pickerFor builds the picker over use; with locality weighting, a
// locality's weight is scaled by its availability, Envoy's effective
// locality weight (arch_overview/upstream/load_balancing/locality_weight):
// weight × min(100%, healthy share × overprovisioning factor), the share
// computed against the full level.
func (sh *shared) pickerFor(use, level []member, overprov uint32) picker {
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
		// Effective weight = locality weight × availability, in 1/1000.
		avail := min(uint64(1000), uint64(overprov)*10*uint64(len(ms))/uint64(total[l]))
		w := uint32(uint64(ms[0].lweight) * avail)
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
		v = c.newView(v.members)
		c.cur.Store(v)
	}
	return v
}
