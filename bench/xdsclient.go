package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
)

// simProxy is a simulated proxy: meshtest's lean ADS client (one
// state-of-the-world or delta stream, wildcard CDS, EDS, LDS and RDS, every
// response ACKed, no resources decoded or kept: 2,000 of them share the
// machine with the control plane) that also notes when a response of one
// type first carries an expected text in its encoded resources.
type simProxy struct {
	*meshtest.XDSClient

	mu         sync.Mutex
	first      map[string]time.Time // when the first response of a type came
	expect     []byte
	expectType string
	found      chan struct{} // closed once a response of expectType holds expect
	foundAt    time.Time
}

func dialSim(addr string, m *node.Meta, delta bool) (*simProxy, error) {
	s := &simProxy{first: map[string]time.Time{}, found: make(chan struct{})}
	c, err := meshtest.DialXDS(addr, m, meshtest.XDSClientOptions{Lean: true, Delta: delta, ObserveRaw: s.observe})
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
	if typeURL != s.expectType || s.expect == nil || !s.foundAt.IsZero() {
		return
	}
	if bytes.Contains(raw, s.expect) {
		s.foundAt = now
		close(s.found)
	}
}

// expectCluster arms the next wait: a CDS response holding name.
func (s *simProxy) expectCluster(name string) { s.expectIn(resource.ClusterType, name) }

// expectIn arms the next wait: a response of typeURL with a resource
// whose encoding holds text.
func (s *simProxy) expectIn(typeURL, text string) {
	s.mu.Lock()
	s.expectType = typeURL
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
