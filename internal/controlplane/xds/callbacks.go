package xds

import (
	"context"
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"

	"github.com/weftmesh/weft/internal/node"
)

// proxyState is what the server knows about one connected proxy. Guarded
// by Server.mu.
type proxyState struct {
	id          string
	meta        *node.Meta
	identity    string // verified SPIFFE identity; "" on the plaintext dev port
	delta       bool
	stream      streamKey // the one stream serving this proxy
	gen         uint64    // stream generation, for the registry
	pending     bool      // waiting for the stream it replaced to end: not pushed
	connectedAt time.Time

	// lists is the published config per type, in the order of Types: the
	// interner's lists, shared with every proxy of the same version (the
	// translate.Output is rebuilt from them on demand, not kept per proxy).
	lists        *[5]*encodedList
	shared       []setKey             // shared resource lists lists references
	checkErr     string               // last consistency-check failure, "" when fine
	credProblems []string             // credentials it names but is not served (translate.CredentialProblems), as last logged
	versions     map[string]string    // per type: version published in the cache
	changeAt     map[string]time.Time // per type: when the change behind versions happened
	types        map[string]*typeState
}

// typeState tracks the wire exchange of one resource type.
type typeState struct {
	sent, acked string
	sentAt      time.Time
	nack        string // error_detail of the last NACK, cleared by an ACK
	nackVersion string
	nacks       int
	nonces      map[string]string // stream/nonce → version sent
}

func (p *proxyState) typ(t string) *typeState {
	ts := p.types[t]
	if ts == nil {
		ts = &typeState{nonces: map[string]string{}}
		p.types[t] = ts
	}
	return ts
}

// callbacks receives go-control-plane's stream events.
type callbacks struct{ s *Server }

var _ serverv3.Callbacks = callbacks{}

func (c callbacks) OnStreamOpen(ctx context.Context, id int64, _ string) error {
	c.s.streamOpen(ctx, streamKey{false, id})
	return nil
}
func (c callbacks) OnDeltaStreamOpen(ctx context.Context, id int64, _ string) error {
	c.s.streamOpen(ctx, streamKey{true, id})
	return nil
}
func (c callbacks) OnStreamClosed(id int64, _ *corev3.Node) { c.s.closeStream(streamKey{false, id}) }
func (c callbacks) OnDeltaStreamClosed(id int64, _ *corev3.Node) {
	c.s.closeStream(streamKey{true, id})
}
func (c callbacks) OnFetchRequest(context.Context, *discoveryv3.DiscoveryRequest) error {
	return fmt.Errorf("REST xDS is not served; use ADS")
}
func (c callbacks) OnFetchResponse(*discoveryv3.DiscoveryRequest, *discoveryv3.DiscoveryResponse) {}

func (c callbacks) OnStreamRequest(id int64, r *discoveryv3.DiscoveryRequest) error {
	nacked, err := c.s.request(streamKey{false, id}, r.GetNode(), r.GetTypeUrl(), r.GetResponseNonce(), r.GetVersionInfo(), r.GetErrorDetail().GetMessage(), r.GetErrorDetail() != nil)
	if nacked != "" {
		// go-control-plane would answer a NACK (which carries the older
		// version) by re-sending the rejected version at once, forever.
		// Like Istio, wait for a new version instead.
		r.VersionInfo = nacked
	}
	return err
}

func (c callbacks) OnStreamResponse(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, r *discoveryv3.DiscoveryResponse) {
	c.s.response(streamKey{false, id}, r.GetTypeUrl(), r.GetNonce(), r.GetVersionInfo())
}

func (c callbacks) OnStreamDeltaRequest(id int64, r *discoveryv3.DeltaDiscoveryRequest) error {
	_, err := c.s.request(streamKey{true, id}, r.GetNode(), r.GetTypeUrl(), r.GetResponseNonce(), "", r.GetErrorDetail().GetMessage(), r.GetErrorDetail() != nil)
	return err
}

func (c callbacks) OnStreamDeltaResponse(id int64, _ *discoveryv3.DeltaDiscoveryRequest, r *discoveryv3.DeltaDiscoveryResponse) {
	c.s.response(streamKey{true, id}, r.GetTypeUrl(), r.GetNonce(), r.GetSystemVersionInfo())
}

// request handles a discovery request: the first one of a stream registers
// the proxy (and publishes its config before the cache opens a watch);
// later ones are ACKs or NACKs of what was sent. For a NACK it returns
// the version that was rejected.
func (s *Server) request(k streamKey, n *corev3.Node, typeURL, nonce, version, errMsg string, nacked bool) (string, error) {
	s.mu.Lock()
	id, known := s.streams[k]
	if !known {
		detached := s.detached[k]
		s.mu.Unlock()
		if detached {
			return "", errSuperseded
		}
		return "", s.openStream(k, n)
	}
	p := s.proxies[id]
	if p != nil && p.stream == k && n != nil {
		// A proxy re-sends its node when its lifecycle changes (ready,
		// draining); only that is taken from a later request, and only
		// from the stream that registered the node.
		if l := node.LifecycleOf(n); l != p.meta.Lifecycle {
			m := *p.meta
			m.Lifecycle = l
			p.meta = &m
			gen := p.gen
			s.mu.Unlock()
			s.log.Info("proxy lifecycle", "proxy", id, "state", lifecycleName(l))
			if s.opts.OnConnect != nil {
				s.opts.OnConnect(id, gen, &m)
			}
			s.mu.Lock()
			p = s.proxies[id]
		}
	}
	if p == nil || p.stream != k || nonce == "" {
		s.mu.Unlock()
		return "", nil
	}
	ts := p.typ(typeURL)
	nk := nonceKey(k, nonce)
	sentVersion, ok := ts.nonces[nk]
	delete(ts.nonces, nk)
	if !ok {
		sentVersion = version
	}
	now := s.opts.Now()
	var converged time.Duration
	if nacked {
		ts.nack = errMsg
		ts.nackVersion = sentVersion
		ts.nacks++
	} else {
		if version == "" { // delta ACKs carry no version
			version = sentVersion
		}
		ts.acked = version
		ts.nack, ts.nackVersion = "", ""
		if at, ok := p.changeAt[typeURL]; ok && version == p.versions[typeURL] {
			converged = now.Sub(at)
			delete(p.changeAt, typeURL)
		}
	}
	s.mu.Unlock()
	if nacked {
		s.metrics.nack(typeURL)
		s.log.Warn("proxy rejected config (NACK)", "proxy", id, "type", ShortType(typeURL), "version", sentVersion, "error", errMsg)
		return sentVersion, nil
	}
	if converged > 0 {
		s.metrics.convergence.observe(converged.Seconds())
	}
	return "", nil
}

func nonceKey(k streamKey, nonce string) string {
	return fmt.Sprintf("%t/%d/%s", k.delta, k.id, nonce)
}

// streamOpen remembers how to end stream k (see supersede.go).
func (s *Server) streamOpen(ctx context.Context, k streamKey) {
	s.streamOpened(ctx, k)
	if h := handleOf(ctx); h != nil {
		s.mu.Lock()
		s.handles[k] = h
		s.mu.Unlock()
	}
}

// openStream registers a proxy on its first request. An unparsable node
// closes the stream with the reason. A node ID has one stream: a newer one
// replaces the older, which is detached at once (its requests are refused,
// pushes no longer reach it), ended, and only then is the newer one's
// config published, so neither sees the other's config or status.
func (s *Server) openStream(k streamKey, n *corev3.Node) error {
	meta, err := node.Parse(n)
	if err != nil {
		s.log.Warn("rejecting xDS stream", "err", err)
		return fmt.Errorf("invalid node: %w", err)
	}
	verified, err := s.bindIdentity(k, n, meta)
	if err != nil {
		s.log.Warn("rejecting xDS stream: identity mismatch", "err", err)
		return err
	}
	id := n.GetId()
	now := s.opts.Now()
	s.mu.Lock()
	old := s.proxies[id]
	if old != nil && meta.Lifecycle == node.LifecycleDraining && old.meta.Lifecycle != node.LifecycleDraining {
		// A proxy handing over to its restarted successor (both bind
		// the ports for a while) reconnects draining: it must not take
		// the node back from the successor.
		s.mu.Unlock()
		return errDrainingLoses
	}
	var prev *streamHandle
	if old != nil {
		delete(s.streams, old.stream)
		s.detached[old.stream] = true
		prev = s.handles[old.stream]
		s.intern.release(old.shared)
		old.shared = nil
	}
	s.nextGen++
	p := &proxyState{id: id, meta: meta, identity: verified, delta: k.delta, stream: k, gen: s.nextGen, pending: true, connectedAt: now,
		versions: map[string]string{}, changeAt: map[string]time.Time{}, types: map[string]*typeState{}}
	s.proxies[id] = p
	s.streams[k] = id
	s.mu.Unlock()
	if old == nil {
		s.metrics.connected.Add(1)
	} else {
		s.log.Warn("a newer xDS stream replaces the proxy's stream", "proxy", id)
		if prev != nil {
			prev.cancel(errSuperseded)
			select {
			case <-prev.done:
			case <-time.After(5 * time.Second):
			}
		}
	}
	// Publish before the cache opens the watch for this request. pushMu
	// orders this against a concurrent flush of a newer snapshot, which
	// then re-reads s.gen.
	s.pushMu.Lock()
	s.mu.Lock()
	if s.proxies[id] != p { // replaced in turn while waiting
		s.mu.Unlock()
		s.pushMu.Unlock()
		return errSuperseded
	}
	p.pending = false
	if old != nil {
		s.watches.clear(id)
	}
	g := s.gen
	s.mu.Unlock()
	s.push(g, p, now)
	s.pushMu.Unlock()
	if s.opts.OnConnect != nil {
		s.opts.OnConnect(id, p.gen, meta)
	}
	s.log.Info("proxy connected", "proxy", id, "delta", k.delta)
	return nil
}

// closeStream forgets a stream; the proxy goes with the stream serving it
// (not with one it replaced).
func (s *Server) closeStream(k streamKey) {
	s.mu.Lock()
	delete(s.handles, k)
	delete(s.detached, k)
	delete(s.idents, k)
	id, ok := s.streams[k]
	if !ok {
		s.mu.Unlock()
		return
	}
	delete(s.streams, k)
	p := s.proxies[id]
	if p == nil || p.stream != k {
		s.mu.Unlock()
		return
	}
	delete(s.proxies, id)
	s.watches.clear(id)
	s.intern.release(p.shared)
	p.shared = nil
	s.mu.Unlock()
	s.metrics.connected.Add(-1)
	s.log.Info("proxy disconnected", "proxy", id)
	if s.opts.OnDisconnect != nil {
		s.opts.OnDisconnect(id, p.gen)
	}
}

// response records what is about to be sent.
func (s *Server) response(k streamKey, typeURL, nonce, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proxies[s.streams[k]]
	if p == nil || p.stream != k {
		return
	}
	ts := p.typ(typeURL)
	ts.sent = version
	ts.sentAt = s.opts.Now()
	ts.nonces[nonceKey(k, nonce)] = version
	s.metrics.push(typeURL)
}

func lifecycleName(l node.Lifecycle) string {
	if l == "" {
		return string(node.LifecycleReady)
	}
	return string(l)
}
