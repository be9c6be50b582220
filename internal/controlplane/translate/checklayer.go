package translate

import (
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// partIndex is a shared part checked on its own, once: its problems, its
// names, and what it could not resolve by itself (references, EDS clusters
// without an assignment, assignments without an EDS cluster), left for
// each proxy's own part to resolve.
type partIndex struct {
	errs       []error
	clusters   map[string]*clusterv3.Cluster
	assigned   map[string]bool
	routes     map[string]bool
	listeners  map[string]bool
	binds      map[string]string
	needs      []checkItem // references not found in the part
	unassigned [][2]string // EDS cluster, assignment name
	orphans    []string    // assignments without an EDS cluster in the part
}

// index returns part's index, computed once per part.
func (c *Cache) index(part *Output) *partIndex {
	if v, ok := c.parts.Load(part); ok {
		return v.(*partIndex)
	}
	ix := newPartIndex(part)
	v, _ := c.parts.LoadOrStore(part, ix)
	return v.(*partIndex)
}

func newPartIndex(o *Output) *partIndex {
	ix := &partIndex{clusters: map[string]*clusterv3.Cluster{}, assigned: map[string]bool{}, routes: map[string]bool{},
		listeners: map[string]bool{}, binds: map[string]string{}}
	fail := func(format string, a ...any) { ix.errs = append(ix.errs, fmt.Errorf(format, a...)) }
	run := func(items []checkItem) {
		for _, it := range items {
			switch {
			case it.err != nil:
				ix.errs = append(ix.errs, it.err)
			case it.route && ix.routes[it.name], !it.route && ix.clusters[it.name] != nil:
			default:
				ix.needs = append(ix.needs, it)
			}
		}
	}
	for _, cl := range o.Clusters {
		if ix.clusters[cl.GetName()] != nil {
			fail("cluster %q: defined twice", cl.GetName())
		}
		ix.clusters[cl.GetName()] = cl
		run(clusterSteps(cl))
	}
	for _, e := range o.Endpoints {
		if ix.assigned[e.GetClusterName()] {
			fail("assignment %q: defined twice", e.GetClusterName())
		}
		ix.assigned[e.GetClusterName()] = true
		var s stepList
		s.validate("assignment "+e.GetClusterName(), e)
		run(s)
		if cl := ix.clusters[e.GetClusterName()]; cl == nil || cl.GetType() != clusterv3.Cluster_EDS {
			ix.orphans = append(ix.orphans, e.GetClusterName())
		}
	}
	for _, cl := range o.Clusters {
		if svc := edsServiceName(cl); svc != "" && !ix.assigned[svc] {
			ix.unassigned = append(ix.unassigned, [2]string{cl.GetName(), svc})
		}
	}
	for _, rc := range o.Routes {
		if ix.routes[rc.GetName()] {
			fail("route config %q: defined twice", rc.GetName())
		}
		ix.routes[rc.GetName()] = true
		run(routeSteps(rc))
	}
	for _, l := range o.Listeners {
		if ix.listeners[l.GetName()] {
			fail("listener %q: defined twice", l.GetName())
		}
		ix.listeners[l.GetName()] = true
		if addr, ok := bindAddress(l.GetAddress().GetSocketAddress()); ok {
			if other, dup := ix.binds[addr]; dup {
				fail("listeners %q and %q both bind %s", other, l.GetName(), addr)
			}
			ix.binds[addr] = l.GetName()
		}
		run((*Cache)(nil).listenerSteps(l)) // once per shared part
	}
	for _, sec := range o.Secrets {
		var s stepList
		s.validate("secret "+sec.GetName(), sec)
		run(s)
	}
	return ix
}

// checkLayered checks shared ∪ own: the shared part's index (computed
// once for all proxies of a key) plus the own part, resolving across
// both. It finds the same problems as Output.Check on the merged output;
// only their order may differ.
func (c *Cache) checkLayered(shared, own *Output) error {
	ix := c.index(shared)
	errs := append([]error(nil), ix.errs...)
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	clusters := map[string]*clusterv3.Cluster{}
	cluster := func(name string) *clusterv3.Cluster {
		if cl := clusters[name]; cl != nil {
			return cl
		}
		return ix.clusters[name]
	}
	assigned, routes := map[string]bool{}, map[string]bool{}
	run := func(items []checkItem) {
		for _, it := range items {
			switch {
			case it.err != nil:
				errs = append(errs, it.err)
			case it.route:
				if !routes[it.name] && !ix.routes[it.name] {
					fail("%s: route config %q does not exist", it.where, it.name)
				}
			case cluster(it.name) == nil:
				fail("%s: cluster %q does not exist", it.where, it.name)
			}
		}
	}
	for _, cl := range own.Clusters {
		if cluster(cl.GetName()) != nil {
			fail("cluster %q: defined twice", cl.GetName())
		}
		clusters[cl.GetName()] = cl
		run(clusterSteps(cl))
	}
	for _, e := range own.Endpoints {
		if assigned[e.GetClusterName()] || ix.assigned[e.GetClusterName()] {
			fail("assignment %q: defined twice", e.GetClusterName())
		}
		assigned[e.GetClusterName()] = true
		var s stepList
		s.validate("assignment "+e.GetClusterName(), e)
		run(s)
		if cl := cluster(e.GetClusterName()); cl == nil || cl.GetType() != clusterv3.Cluster_EDS {
			fail("assignment %q: no EDS cluster of that name", e.GetClusterName())
		}
	}
	for _, name := range ix.orphans {
		if cl := clusters[name]; cl == nil || cl.GetType() != clusterv3.Cluster_EDS {
			fail("assignment %q: no EDS cluster of that name", name)
		}
	}
	for _, u := range ix.unassigned {
		if !assigned[u[1]] {
			fail("cluster %q: EDS without an assignment %q", u[0], u[1])
		}
	}
	for _, cl := range own.Clusters {
		if svc := edsServiceName(cl); svc != "" && !assigned[svc] && !ix.assigned[svc] {
			fail("cluster %q: EDS without an assignment %q", cl.GetName(), svc)
		}
	}
	for _, rc := range own.Routes {
		if routes[rc.GetName()] || ix.routes[rc.GetName()] {
			fail("route config %q: defined twice", rc.GetName())
		}
		routes[rc.GetName()] = true
	}
	for _, rc := range own.Routes {
		run(routeSteps(rc))
	}
	run(ix.needs)
	binds := map[string]string{}
	listeners := map[string]bool{}
	for _, l := range own.Listeners {
		if listeners[l.GetName()] || ix.listeners[l.GetName()] {
			fail("listener %q: defined twice", l.GetName())
		}
		listeners[l.GetName()] = true
		if addr, ok := bindAddress(l.GetAddress().GetSocketAddress()); ok {
			other, dup := binds[addr]
			if !dup {
				other, dup = ix.binds[addr]
			}
			if dup {
				fail("listeners %q and %q both bind %s", other, l.GetName(), addr)
			}
			binds[addr] = l.GetName()
		}
		run(c.listenerSteps(l))
	}
	for _, sec := range own.Secrets {
		var s stepList
		s.validate("secret "+sec.GetName(), sec)
		run(s)
	}
	return errors.Join(errs...)
}
