package xdsclient

import (
	"slices"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

type namedAny struct {
	name    string // empty for SotW (the message carries it)
	version string
	any     *anypb.Any
}

// deltaStream speaks DeltaAggregatedResources.
type deltaStream struct {
	s          discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	mu         sync.Mutex // sends (the session's and announce's); node
	node       *corev3.Node
	nodeSent   bool
	initial    map[string]map[string]string // resource versions from before a reconnect
	subscribed map[string]map[string]bool
}

func (d *deltaStream) send(r *discoveryv3.DeltaDiscoveryRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.nodeSent {
		r.Node = d.node
		d.nodeSent = true
	}
	return d.s.Send(r)
}

func (d *deltaStream) subscribe(typeURL string, names map[string]bool) error {
	cur, started := d.subscribed[typeURL]
	if wildcard(typeURL) {
		if started {
			return nil
		}
		d.subscribed[typeURL] = map[string]bool{}
		return d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL, ResourceNamesSubscribe: []string{"*"},
			InitialResourceVersions: d.initial[typeURL]})
	}
	req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL}
	for _, n := range sortedNames(names) {
		if !cur[n] {
			req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, n)
		}
	}
	for _, n := range sortedNames(cur) {
		if !names[n] {
			req.ResourceNamesUnsubscribe = append(req.ResourceNamesUnsubscribe, n)
		}
	}
	if len(req.ResourceNamesSubscribe) == 0 && len(req.ResourceNamesUnsubscribe) == 0 {
		return nil
	}
	if !started {
		iv := map[string]string{}
		for n, v := range d.initial[typeURL] {
			if names[n] {
				iv[n] = v
			}
		}
		req.InitialResourceVersions = iv
	}
	next := map[string]bool{}
	for n := range names {
		next[n] = true
	}
	d.subscribed[typeURL] = next
	return d.send(req)
}

func (d *deltaStream) ack(u *update, err error) error {
	return d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: u.typeURL, ResponseNonce: u.nonce, ErrorDetail: errorDetail(err)})
}

func (d *deltaStream) recv() (*update, error) {
	r, err := d.s.Recv()
	if err != nil {
		return nil, err
	}
	u := &update{typeURL: r.GetTypeUrl(), nonce: r.GetNonce(), version: r.GetSystemVersionInfo(), removed: r.GetRemovedResources()}
	for _, res := range r.GetResources() {
		u.res = append(u.res, namedAny{name: res.GetName(), version: res.GetVersion(), any: res.GetResource()})
	}
	return u, nil
}

// sotwStream speaks StreamAggregatedResources.
type sotwStream struct {
	s        discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	mu       sync.Mutex // sends (the session's and announce's); node, last
	node     *corev3.Node
	nodeSent bool
	// last holds, per type, the last request sent: version and nonce to
	// repeat when the names change.
	last map[string]*discoveryv3.DiscoveryRequest
}

func (s *sotwStream) send(r *discoveryv3.DiscoveryRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.nodeSent {
		r.Node = s.node
		s.nodeSent = true
	}
	s.last[r.TypeUrl] = &discoveryv3.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: r.VersionInfo,
		ResponseNonce: r.ResponseNonce, ResourceNames: r.ResourceNames}
	return s.s.Send(r)
}

func (s *sotwStream) subscribe(typeURL string, names map[string]bool) error {
	last, started := s.last[typeURL]
	if wildcard(typeURL) {
		if started {
			return nil
		}
		return s.send(&discoveryv3.DiscoveryRequest{TypeUrl: typeURL})
	}
	list := sortedNames(names)
	// An empty list would mean wildcard in SotW: only ask once there are names.
	if len(list) == 0 || (started && slices.Equal(last.ResourceNames, list)) {
		return nil
	}
	req := &discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: list}
	if started {
		req.VersionInfo, req.ResponseNonce = last.VersionInfo, last.ResponseNonce
	}
	return s.send(req)
}

func (s *sotwStream) ack(u *update, err error) error {
	req := &discoveryv3.DiscoveryRequest{TypeUrl: u.typeURL, ResponseNonce: u.nonce, ErrorDetail: errorDetail(err)}
	if last := s.last[u.typeURL]; last != nil {
		req.ResourceNames = last.ResourceNames
		req.VersionInfo = last.VersionInfo
	}
	if err == nil {
		req.VersionInfo = u.version
	}
	return s.send(req)
}

func (s *sotwStream) recv() (*update, error) {
	r, err := s.s.Recv()
	if err != nil {
		return nil, err
	}
	// LDS and CDS responses carry the whole set. An RDS, EDS or SDS
	// response may carry only some of the requested names (the xDS
	// protocol; Weft's control plane sends only the changed ones, Istio
	// only the changed assignments): the others are kept, and dropped
	// once nothing references them (handle's prune).
	full := r.GetTypeUrl() == ListenerType || r.GetTypeUrl() == ClusterType
	u := &update{typeURL: r.GetTypeUrl(), nonce: r.GetNonce(), version: r.GetVersionInfo(), full: full}
	for _, a := range r.GetResources() {
		u.res = append(u.res, namedAny{version: r.GetVersionInfo(), any: a})
	}
	return u, nil
}

// announce re-sends the node on the open stream (its metadata changed):
// a request for listeners that asks for nothing new. Before the first
// request, the new node simply goes with it.
func (d *deltaStream) announce(n *corev3.Node) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.node = n
	if !d.nodeSent {
		return nil
	}
	return d.s.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ListenerType, Node: n})
}

func (s *sotwStream) announce(n *corev3.Node) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.node = n
	last := s.last[ListenerType]
	if !s.nodeSent || last == nil {
		return nil
	}
	return s.s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: ListenerType, VersionInfo: last.VersionInfo,
		ResponseNonce: last.ResponseNonce, Node: n})
}
