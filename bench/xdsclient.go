package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
)

// simProxy is a simulated proxy: meshtest's lean ADS client (one
// state-of-the-world or delta stream, wildcard CDS, EDS, LDS and RDS, every
// response ACKed, no resources decoded or kept: 2,000 of them share the
// machine with the control plane) that also notes when responses of the
// expected types have all carried an expected text in their encoded
// resources.
type simProxy struct {
	*meshtest.XDSClient

	mu      sync.Mutex
	first   map[string]time.Time // when the first response of a type came
	expect  []byte
	pending map[string]bool // expected types whose response has not held expect yet
	found   chan struct{}   // closed once every expected type's response held expect
	foundAt time.Time
}

// simDialOptions give a simulated proxy's connection the HTTP/2 flow
// control windows Envoy's gRPC client grants by default (256 MiB per
// stream and connection, Envoy's http2_protocol_options defaults) instead
// of gRPC-Go's 64 KiB start: with it, a 490 KB route configuration took
// eight window round trips through the harness's scheduler per proxy.
var simDialOptions = []grpc.DialOption{
	grpc.WithTransportCredentials(insecure.NewCredentials()),
	grpc.WithInitialWindowSize(256 << 20),
	grpc.WithInitialConnWindowSize(256 << 20),
}

func dialSim(addr string, m *node.Meta, delta bool) (*simProxy, error) {
	s := &simProxy{first: map[string]time.Time{}, found: make(chan struct{})}
	c, err := meshtest.DialXDS(addr, m, meshtest.XDSClientOptions{Lean: true, Delta: delta, ObserveRaw: s.observe, DialOptions: simDialOptions})
	if err != nil {
		return nil, err
	}
	s.XDSClient = c
	return s, nil
}

// observe sees a response's encoded resources (not decoded: the 2,000
// simulated proxies share the cores with the control plane).
func (s *simProxy) observe(typeURL string, raw []byte) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first[typeURL].IsZero() {
		s.first[typeURL] = now
	}
	if !s.pending[typeURL] || s.expect == nil || !s.foundAt.IsZero() {
		return
	}
	if bytes.Contains(raw, s.expect) {
		delete(s.pending, typeURL)
		if len(s.pending) == 0 {
			s.foundAt = now
			close(s.found)
		}
	}
}

// expectIn arms the next wait: for each of typeURLs a response with a
// resource whose encoding holds text (the wait ends with the last).
func (s *simProxy) expectIn(typeURLs []string, text string) {
	s.mu.Lock()
	s.pending = map[string]bool{}
	for _, t := range typeURLs {
		s.pending[t] = true
	}
	s.expect = []byte(text)
	s.found = make(chan struct{})
	s.foundAt = time.Time{}
	s.mu.Unlock()
}

// waitSynced waits for the first CDS and LDS responses and returns when
// the later of the two came.
func (s *simProxy) waitSynced(ctx context.Context) (time.Time, error) {
	var at time.Time
	err := s.WaitFor(ctx, func(*meshtest.XDSClient) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		cds, lds := s.first[resource.ClusterType], s.first[resource.ListenerType]
		at = cds
		if lds.After(cds) {
			at = lds
		}
		return !cds.IsZero() && !lds.IsZero()
	})
	return at, err
}

// waitFound waits for the response expectIn armed.
func (s *simProxy) waitFound(ctx context.Context) (time.Time, error) {
	s.mu.Lock()
	found := s.found
	s.mu.Unlock()
	err := s.WaitFor(ctx, func(*meshtest.XDSClient) bool {
		select {
		case <-found:
			return true
		default:
			return false
		}
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("waiting for the expected response: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.foundAt, nil
}

func (s *simProxy) close() { s.Close() }
