package registry

import (
	"maps"
	"slices"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/node"
)

// workloadIndex finds the workloads a label selector may select without
// trying every workload: by namespace and one label pair. With N
// Services each selecting its own WorkloadEntry, matching every Service
// against every workload was N² label matches per snapshot (measured:
// 15% of the control plane's CPU for a change at 1,000 services).
type workloadIndex struct {
	all     []*Workload
	byLabel map[workloadKey][]*Workload // in the order given
}

type workloadKey struct{ namespace, label, value string }

func indexWorkloads(all []*Workload) *workloadIndex {
	x := &workloadIndex{all: all, byLabel: map[workloadKey][]*Workload{}}
	for _, w := range all {
		for k, v := range w.Labels {
			key := workloadKey{w.Namespace, k, v}
			x.byLabel[key] = append(x.byLabel[key], w)
		}
	}
	return x
}

// candidates returns a superset of the workloads of namespace that
// selector selects, in the order given (callers still match namespace and
// the whole selector): those carrying its rarest label pair, or all for
// an empty selector.
func (x *workloadIndex) candidates(namespace string, selector map[string]string) []*Workload {
	if len(selector) == 0 {
		return x.all
	}
	var best []*Workload
	first := true
	// The rarest pair, so the caller checks the fewest.
	for _, k := range slices.Sorted(maps.Keys(selector)) {
		ws := x.byLabel[workloadKey{namespace, k, selector[k]}]
		if first || len(ws) < len(best) {
			best, first = ws, false
		}
	}
	return best
}

// ServiceIndex answers ServicesFor for many proxies of one snapshot
// without scanning every service's endpoints for each (2,000 proxies x
// 1,000 services per push otherwise).
type ServiceIndex struct {
	byAddr map[addrKey][]*model.Service // in snapshot order
}

type addrKey struct{ namespace, address string }

// IndexServices indexes snap's services by their endpoints' namespace and
// address.
func IndexServices(snap *model.Snapshot) *ServiceIndex {
	x := &ServiceIndex{byAddr: map[addrKey][]*model.Service{}}
	if snap == nil {
		return x
	}
	for _, s := range snap.Services {
		for _, ep := range s.Endpoints {
			k := addrKey{ep.Namespace, ep.Address}
			if l := x.byAddr[k]; len(l) == 0 || l[len(l)-1] != s {
				x.byAddr[k] = append(l, s)
			}
		}
	}
	return x
}

// For is ServicesFor(snap, meta) for the indexed snapshot.
func (x *ServiceIndex) For(meta *node.Meta) []*model.Service {
	if meta == nil || meta.IP == "" {
		return nil
	}
	return servicesAmong(x.byAddr[addrKey{meta.Namespace, meta.IP}], meta)
}
