package filter

import (
	"sort"
	"sync"
	"sync/atomic"
)

// Counters is a set of named counters that filters resolve once when they
// are compiled (the hot path only adds to an *atomic.Int64) and the admin
// endpoint lists, e.g. http.inbound_0.0.0.0_80.rbac.denied. Counters of
// the same name are shared across config updates, as Envoy's stats are.
// Safe for concurrent use; the zero value is ready.
type Counters struct {
	mu sync.Mutex
	m  map[string]*atomic.Int64
}

// Counter returns the counter called name, creating it at zero.
func (c *Counters) Counter(name string) *atomic.Int64 {
	if c == nil {
		return new(atomic.Int64)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*atomic.Int64{}
	}
	v := c.m[name]
	if v == nil {
		v = new(atomic.Int64)
		c.m[name] = v
	}
	return v
}

// Each calls fn for every counter, sorted by name.
func (c *Counters) Each(fn func(name string, v int64)) {
	if c == nil {
		return
	}
	c.mu.Lock()
	names := make([]string, 0, len(c.m))
	for n := range c.m {
		names = append(names, n)
	}
	vals := make(map[string]*atomic.Int64, len(c.m))
	for n, v := range c.m {
		vals[n] = v
	}
	c.mu.Unlock()
	sort.Strings(names)
	for _, n := range names {
		fn(n, vals[n].Load())
	}
}
