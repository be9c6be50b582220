// Package meshtest is Weft's shared test kit: a fake xDS control plane that
// serves fixed resources over real gRPC and records what proxies ACK and
// NACK, and builders for the xDS fixtures the proxy tests feed it.
package meshtest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// XDSRequest is one discovery request a proxy sent (SotW or delta), kept so
// tests can assert ACKs, NACKs and subscriptions.
type XDSRequest struct {
	Delta       bool
	TypeURL     string
	Nonce       string
	Version     string   // SotW version_info (the version being ACKed)
	Names       []string // SotW resource_names or delta subscribe
	Unsubscribe []string
	ErrorDetail string // non-empty: a NACK
	Node        *corev3.Node
}

// NACK reports whether the request rejects a response.
func (r XDSRequest) NACK() bool { return r.ErrorDetail != "" }

// XDSServerOptions configures the fake control plane.
type XDSServerOptions struct {
	// NoDelta makes DeltaAggregatedResources answer Unimplemented, as an
	// older control plane would, so clients must fall back to SotW.
	NoDelta bool
	// Addr to listen on; empty means 127.0.0.1:0.
	Addr string
}

// XDSServer is a fake ADS control plane backed by go-control-plane's
// snapshot cache: every node gets the same snapshot.
type XDSServer struct {
	opts  XDSServerOptions
	cache cachev3.SnapshotCache

	mu       sync.Mutex
	addr     string
	grpc     *grpc.Server
	requests []XDSRequest
	changed  chan struct{} // closed and replaced on every recorded request
	version  int
}

type fixedHash struct{}

func (fixedHash) ID(*corev3.Node) string { return "all" }

// NewXDSServer starts the fake control plane on opts.Addr (default an
// ephemeral loopback port).
func NewXDSServer(opts XDSServerOptions) (*XDSServer, error) {
	s := &XDSServer{opts: opts, cache: cachev3.NewSnapshotCache(false, fixedHash{}, nil), changed: make(chan struct{})}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if err := s.start(addr); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *XDSServer) start(addr string) error {
	var ln net.Listener
	var err error
	// A restarted server rebinds the same port; the old socket may take a
	// moment to be released.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("xds server listen: %w", err)
	}
	cb := serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
			s.record(XDSRequest{TypeURL: r.GetTypeUrl(), Nonce: r.GetResponseNonce(), Version: r.GetVersionInfo(),
				Names: r.GetResourceNames(), ErrorDetail: r.GetErrorDetail().GetMessage(), Node: r.GetNode()})
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			s.record(XDSRequest{Delta: true, TypeURL: r.GetTypeUrl(), Nonce: r.GetResponseNonce(),
				Names: r.GetResourceNamesSubscribe(), Unsubscribe: r.GetResourceNamesUnsubscribe(),
				ErrorDetail: r.GetErrorDetail().GetMessage(), Node: r.GetNode()})
			return nil
		},
	}
	srv := serverv3.NewServer(context.Background(), s.cache, cb)
	g := grpc.NewServer()
	var ads discoveryv3.AggregatedDiscoveryServiceServer = srv
	if s.opts.NoDelta {
		ads = sotwOnly{srv}
	}
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, ads)
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.grpc = g
	s.mu.Unlock()
	go func() { _ = g.Serve(ln) }()
	return nil
}

type sotwOnly struct{ serverv3.Server }

func (sotwOnly) DeltaAggregatedResources(discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	return status.Error(codes.Unimplemented, "delta xDS not supported")
}

// Addr is the host:port proxies dial.
func (s *XDSServer) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Stop closes the server and every open stream.
func (s *XDSServer) Stop() {
	s.mu.Lock()
	g := s.grpc
	s.grpc = nil
	s.mu.Unlock()
	if g != nil {
		g.Stop()
	}
}

// Restart stops the server and serves again on the same address with the
// same snapshot, as a control plane that restarts does.
func (s *XDSServer) Restart() error {
	addr := s.Addr()
	s.Stop()
	return s.start(addr)
}

// Resources is a set of xDS resources keyed by type.
type Resources struct {
	Listeners []types.Resource
	Routes    []types.Resource
	Clusters  []types.Resource
	Endpoints []types.Resource
	Secrets   []types.Resource
}

// Set publishes a new snapshot (a new version) to every connected proxy.
func (s *XDSServer) Set(r Resources) error {
	s.mu.Lock()
	s.version++
	v := strconv.Itoa(s.version)
	s.mu.Unlock()
	snap, err := cachev3.NewSnapshot(v, map[resource.Type][]types.Resource{
		resource.ListenerType: r.Listeners,
		resource.RouteType:    r.Routes,
		resource.ClusterType:  r.Clusters,
		resource.EndpointType: r.Endpoints,
		resource.SecretType:   r.Secrets,
	})
	if err != nil {
		return err
	}
	return s.cache.SetSnapshot(context.Background(), "all", snap)
}

// Version is the last published snapshot version.
func (s *XDSServer) Version() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strconv.Itoa(s.version)
}

func (s *XDSServer) record(r XDSRequest) {
	s.mu.Lock()
	s.requests = append(s.requests, r)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Requests returns a copy of every request recorded so far.
func (s *XDSServer) Requests() []XDSRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]XDSRequest(nil), s.requests...)
}

// WaitRequest waits until a request recorded at index >= from satisfies
// match, and returns it with its index.
func (s *XDSServer) WaitRequest(ctx context.Context, from int, match func(XDSRequest) bool) (XDSRequest, int, error) {
	for {
		s.mu.Lock()
		for i := from; i < len(s.requests); i++ {
			if match(s.requests[i]) {
				r := s.requests[i]
				s.mu.Unlock()
				return r, i, nil
			}
		}
		from = len(s.requests)
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return XDSRequest{}, 0, fmt.Errorf("waiting for xds request: %w", ctx.Err())
		}
	}
}
