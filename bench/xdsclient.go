package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftmesh/weft/internal/node"
)

// simProxy is a lean simulated proxy: one state-of-the-world ADS stream
// with wildcard CDS, EDS, LDS and RDS subscriptions that ACKs every
// response. Unlike meshtest.XDSClient it keeps no decoded resources
// (that costs megabytes per proxy with 1,000 services, too much for 2,000
// proxies in one process); it only notes when its first CDS and LDS
// arrived and when a CDS response first carries an expected name.
type simProxy struct {
	conn   *grpc.ClientConn
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	got      map[string]bool
	synced   chan struct{} // closed once CDS and LDS arrived
	expect   []byte
	found    chan struct{} // closed once a CDS response holds expect
	foundAt  time.Time
	syncedAt time.Time
	err      error
}

var simTypes = []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}

func dialSim(addr string, m *node.Meta) (*simProxy, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &simProxy{conn: conn, cancel: cancel, done: make(chan struct{}), got: map[string]bool{},
		synced: make(chan struct{}), found: make(chan struct{})}
	go func() {
		defer close(s.done)
		err := s.run(ctx, discoveryv3.NewAggregatedDiscoveryServiceClient(conn), m)
		if ctx.Err() == nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
		}
	}()
	return s, nil
}

func (s *simProxy) run(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient, m *node.Meta) error {
	st, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	for i, t := range simTypes {
		req := &discoveryv3.DiscoveryRequest{TypeUrl: t}
		if i == 0 {
			req.Node = m.Node()
		}
		if err := st.Send(req); err != nil {
			return err
		}
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		s.observe(resp)
		ack := &discoveryv3.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}
		if err := st.Send(ack); err != nil {
			return err
		}
	}
}

func (s *simProxy) observe(resp *discoveryv3.DiscoveryResponse) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := resp.GetTypeUrl()
	s.got[t] = true
	if s.syncedAt.IsZero() && s.got[resource.ClusterType] && s.got[resource.ListenerType] {
		s.syncedAt = now
		close(s.synced)
	}
	if t == resource.ClusterType && s.expect != nil && s.foundAt.IsZero() {
		for _, r := range resp.GetResources() {
			if bytes.Contains(r.GetValue(), s.expect) {
				s.foundAt = now
				close(s.found)
				break
			}
		}
	}
}

// expectCluster arms the next wait: a CDS response holding name.
func (s *simProxy) expectCluster(name string) {
	s.mu.Lock()
	s.expect = []byte(name)
	s.found = make(chan struct{})
	s.foundAt = time.Time{}
	s.mu.Unlock()
}

// wait blocks until ch closes, the stream ends or ctx ends, and returns
// the time of the event.
func (s *simProxy) wait(ctx context.Context, ch func() (<-chan struct{}, *time.Time)) (time.Time, error) {
	c, at := ch()
	select {
	case <-c:
		s.mu.Lock()
		defer s.mu.Unlock()
		return *at, nil
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		return time.Time{}, fmt.Errorf("stream ended: %v", s.err)
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

func (s *simProxy) waitSynced(ctx context.Context) (time.Time, error) {
	return s.wait(ctx, func() (<-chan struct{}, *time.Time) { return s.synced, &s.syncedAt })
}

func (s *simProxy) waitFound(ctx context.Context) (time.Time, error) {
	return s.wait(ctx, func() (<-chan struct{}, *time.Time) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.found, &s.foundAt
	})
}

func (s *simProxy) close() {
	s.cancel()
	<-s.done
	s.conn.Close()
}
