package registry

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// DefaultGrace is how long an auto-registered workload outlives its
// proxy's last stream, so a quick reconnect does not flap endpoints.
const DefaultGrace = 5 * time.Second

// Auto tracks workloads auto-registered by connected proxies, one per node
// ID, owned by the node's newest xDS stream. It is safe
// for concurrent use. onChange is called (without locks held) whenever
// the set returned by Workloads changes.
type Auto struct {
	grace    time.Duration
	onChange func()
	after    func(time.Duration, func()) *time.Timer

	mu      sync.Mutex
	entries map[string]*autoEntry // by node id
}

type autoEntry struct {
	w    *Workload
	gen  uint64 // the registering stream's generation
	live bool   // that stream is open
	// serving: the proxy is ready for traffic (not starting or draining);
	// only serving workloads are endpoints.
	serving bool
	timer   *time.Timer
}

// NewAuto returns an empty registry of auto-registered workloads. A grace
// of 0 removes workloads as soon as their stream closes.
func NewAuto(grace time.Duration, onChange func()) *Auto {
	if onChange == nil {
		onChange = func() {}
	}
	return &Auto{grace: grace, onChange: onChange, after: time.AfterFunc, entries: map[string]*autoEntry{}}
}

// Connect registers (or refreshes) the workload of node id for the stream
// numbered gen; serving says whether its proxy takes traffic. The newest
// stream owns the registration: what an older stream of the same node ID
// does afterwards changes nothing.
func (a *Auto) Connect(id string, gen uint64, w *Workload, serving bool) {
	a.mu.Lock()
	e := a.entries[id]
	if e != nil && gen < e.gen {
		a.mu.Unlock()
		return
	}
	changed := e == nil || !sameWorkload(e.w, w) || e.serving != serving
	if e == nil {
		e = &autoEntry{}
		a.entries[id] = e
	}
	e.w, e.gen, e.live, e.serving = w, gen, true, serving
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	a.mu.Unlock()
	if changed {
		a.onChange()
	}
}

// Disconnect ends stream gen of node id; the workload goes after the grace
// period unless the proxy reconnects. The end of a stream that no longer
// owns the registration is ignored.
func (a *Auto) Disconnect(id string, gen uint64) {
	a.mu.Lock()
	e := a.entries[id]
	if e == nil || e.gen != gen || !e.live {
		a.mu.Unlock()
		return
	}
	e.live = false
	if a.grace <= 0 {
		delete(a.entries, id)
		a.mu.Unlock()
		a.onChange()
		return
	}
	e.timer = a.after(a.grace, func() { a.expire(id, gen) })
	a.mu.Unlock()
}

func (a *Auto) expire(id string, gen uint64) {
	a.mu.Lock()
	e := a.entries[id]
	if e == nil || e.gen != gen || e.live {
		a.mu.Unlock()
		return
	}
	delete(a.entries, id)
	a.mu.Unlock()
	a.onChange()
}

// Restore registers workloads known before a restart as if their proxies
// had just gone: each stays for grace unless its proxy reconnects (any
// stream then owns it). Node IDs already registered are left alone.
func (a *Auto) Restore(ws map[string]*Workload, grace time.Duration) {
	a.mu.Lock()
	n := 0
	for id, w := range ws {
		if a.entries[id] != nil || w == nil {
			continue
		}
		e := &autoEntry{w: w, serving: true}
		e.timer = a.after(grace, func() { a.expire(id, 0) })
		a.entries[id] = e
		n++
	}
	a.mu.Unlock()
	if n > 0 {
		a.onChange()
	}
}

// Registered returns the registered workloads by node ID (for saving).
// The workloads must not be modified.
func (a *Auto) Registered() map[string]*Workload {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]*Workload, len(a.entries))
	for id, e := range a.entries {
		if e.serving {
			out[id] = e.w
		}
	}
	return out
}

// Workloads returns the serving registered workloads sorted by namespace, name
// and address. The returned workloads must not be modified.
func (a *Auto) Workloads() []*Workload {
	a.mu.Lock()
	out := make([]*Workload, 0, len(a.entries))
	for _, e := range a.entries {
		if e.serving {
			out = append(out, e.w)
		}
	}
	a.mu.Unlock()
	slices.SortFunc(out, func(x, y *Workload) int {
		return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name), cmp.Compare(x.Address, y.Address))
	})
	return out
}

func sameWorkload(a, b *Workload) bool {
	if a.Name != b.Name || a.Namespace != b.Namespace || a.ServiceAccount != b.ServiceAccount ||
		a.Address != b.Address || a.Network != b.Network || a.Locality != b.Locality ||
		a.Weight != b.Weight || a.Source != b.Source || a.TLSMode != b.TLSMode || a.NodeName != b.NodeName ||
		len(a.Labels) != len(b.Labels) || len(a.Ports) != len(b.Ports) {
		return false
	}
	for k, v := range a.Labels {
		if bv, ok := b.Labels[k]; !ok || bv != v {
			return false
		}
	}
	for k, v := range a.Ports {
		if bv, ok := b.Ports[k]; !ok || bv != v {
			return false
		}
	}
	return true
}
