package meshtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/node"
)

// DefaultXDSTypes are the types an XDSClient subscribes to by default, as
// wildcard subscriptions.
var DefaultXDSTypes = []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}

// XDSClientOptions configure an XDSClient.
type XDSClientOptions struct {
	// Delta selects incremental xDS; default is state of the world.
	Delta bool
	// Types to subscribe to (wildcard); default DefaultXDSTypes.
	Types []string
	// Reject, when set, is asked about every response: a non-empty
	// message NACKs it with that error_detail, "" ACKs it.
	Reject func(typeURL string, resources map[string]proto.Message) string
	// DialOptions replace the default plaintext transport (e.g. mTLS to
	// the secure port).
	DialOptions []grpc.DialOption
	// Lean makes a simulated proxy for scale runs: the client decodes no
	// resources and keeps none (Resources is empty, Reject sees nil), only
	// each type's ACKed version and when it was ACKed. Decoded resources
	// cost megabytes per proxy at 1,000 services, and decoding them would
	// make thousands of in-process proxies compete with the server for
	// the CPU.
	Lean bool
	// Observe, when set, sees the raw resources of every response before
	// the client answers it (called from the stream's goroutine).
	Observe func(typeURL string, resources []*anypb.Any)
	// ObserveRaw, with Lean (and no Observe), sees every response's
	// resources as received: the encoded entries of the resources field
	// (Any for state of the world, Resource for delta), without decoding
	// them (scale runs: the simulated proxies share the cores with the
	// server). Called from the stream's goroutine while the response is
	// decoded, before it is answered; raw is valid only during the call.
	ObserveRaw func(typeURL string, raw []byte)
}

// XDSClient is an in-process ADS client that subscribes as a given node,
// records what it receives and ACKs or NACKs it. Safe for concurrent use.
type XDSClient struct {
	conn   *grpc.ClientConn
	cancel context.CancelFunc
	done   chan struct{}
	opts   XDSClientOptions
	node   *corev3.Node

	mu        sync.Mutex
	resources map[string]map[string]proto.Message // type → name → resource
	versions  map[string]string                   // type → accepted version
	acks      map[string]int
	nacks     map[string]int
	lastSize  map[string]int // resources in the last accepted response
	ackedAt   map[string]time.Time
	err       error
	changed   chan struct{} // closed and replaced on every change
}

// DialXDS connects to an ADS server at addr (plaintext) as meta and starts
// subscribing. Close ends the stream.
func DialXDS(addr string, meta *node.Meta, opts XDSClientOptions) (*XDSClient, error) {
	return DialXDSNode(addr, meta.Node(), opts)
}

// DialXDSNode is DialXDS with a raw Node (e.g. a proxyless gRPC client's).
func DialXDSNode(addr string, n *corev3.Node, opts XDSClientOptions) (*XDSClient, error) {
	if len(opts.Types) == 0 {
		opts.Types = DefaultXDSTypes
	}
	dial := opts.DialOptions
	if len(dial) == 0 {
		dial = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	// Large meshes exceed gRPC's 4 MiB default.
	call := []grpc.CallOption{grpc.MaxCallRecvMsgSize(256 << 20)}
	if opts.Lean && opts.Observe == nil {
		call = append(call, grpc.ForceCodecV2(headerCodec{observe: opts.ObserveRaw}))
	}
	conn, err := grpc.NewClient(addr, append(dial, grpc.WithDefaultCallOptions(call...))...)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &XDSClient{
		conn: conn, cancel: cancel, done: make(chan struct{}), opts: opts, node: n,
		resources: map[string]map[string]proto.Message{},
		versions:  map[string]string{},
		acks:      map[string]int{},
		nacks:     map[string]int{},
		lastSize:  map[string]int{},
		ackedAt:   map[string]time.Time{},
		changed:   make(chan struct{}),
	}
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	go func() {
		defer close(c.done)
		var err error
		if opts.Delta {
			err = c.runDelta(ctx, ads)
		} else {
			err = c.runSotW(ctx, ads)
		}
		if ctx.Err() != nil {
			err = nil
		}
		c.update(func() { c.err = err })
	}()
	return c, nil
}

// SetReject replaces the NACK policy for later responses.
func (c *XDSClient) SetReject(fn func(typeURL string, resources map[string]proto.Message) string) {
	c.mu.Lock()
	c.opts.Reject = fn
	c.mu.Unlock()
}

func (c *XDSClient) update(fn func()) {
	c.mu.Lock()
	fn()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *XDSClient) decide(typeURL string, rs map[string]proto.Message) string {
	c.mu.Lock()
	reject := c.opts.Reject
	c.mu.Unlock()
	if reject == nil {
		return ""
	}
	return reject(typeURL, rs)
}

func (c *XDSClient) runSotW(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient) error {
	st, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	send := func(r *discoveryv3.DiscoveryRequest) error { return sendErr(st.Send(r), st.Recv) }
	subscribe := func(t string, n *corev3.Node) *discoveryv3.DiscoveryRequest {
		return &discoveryv3.DiscoveryRequest{TypeUrl: t, Node: n}
	}
	return serve(c, send, st.Recv, subscribe, func(resp *discoveryv3.DiscoveryResponse) error {
		t := resp.GetTypeUrl()
		c.observe(t, resp.GetResources())
		var rs map[string]proto.Message
		msg := ""
		if !c.opts.Lean {
			if rs, err = decodeAll(resp.GetResources()); err != nil {
				msg = err.Error()
			} else {
				msg = c.decide(t, rs)
			}
		}
		req := &discoveryv3.DiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}
		c.update(func() {
			if msg != "" {
				c.nacks[t]++
			} else {
				c.resources[t] = sotwMerge(t, c.resources[t], rs)
				c.accepted(t, resp.GetVersionInfo(), len(resp.GetResources()))
			}
			req.VersionInfo = c.versions[t]
		})
		if msg != "" {
			req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: msg}
		}
		return send(req)
	})
}

func (c *XDSClient) runDelta(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient) error {
	st, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		return err
	}
	send := func(r *discoveryv3.DeltaDiscoveryRequest) error { return sendErr(st.Send(r), st.Recv) }
	subscribe := func(t string, n *corev3.Node) *discoveryv3.DeltaDiscoveryRequest {
		return &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, Node: n}
	}
	return serve(c, send, st.Recv, subscribe, func(resp *discoveryv3.DeltaDiscoveryResponse) error {
		t := resp.GetTypeUrl()
		if c.opts.Observe != nil {
			anys := make([]*anypb.Any, 0, len(resp.GetResources()))
			for _, r := range resp.GetResources() {
				anys = append(anys, r.GetResource())
			}
			c.observe(t, anys)
		}
		if c.opts.Lean {
			if err := send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}); err != nil {
				return err
			}
			c.update(func() {
				c.accepted(t, resp.GetSystemVersionInfo(), len(resp.GetResources())+len(resp.GetRemovedResources()))
			})
			return nil
		}
		c.mu.Lock()
		next := map[string]proto.Message{}
		for k, v := range c.resources[t] {
			next[k] = v
		}
		c.mu.Unlock()
		msg := ""
		for _, r := range resp.GetResources() {
			m, err := r.GetResource().UnmarshalNew()
			if err != nil {
				msg = fmt.Sprintf("decoding %s: %v", r.GetName(), err)
				break
			}
			next[r.GetName()] = m
		}
		for _, name := range resp.GetRemovedResources() {
			delete(next, name)
		}
		if msg == "" {
			msg = c.decide(t, next)
		}
		req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}
		if msg != "" {
			req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: msg}
		}
		c.update(func() {
			if msg != "" {
				c.nacks[t]++
				return
			}
			c.resources[t] = next
			c.accepted(t, resp.GetSystemVersionInfo(), len(resp.GetResources())+len(resp.GetRemovedResources()))
		})
		return send(req)
	})
}

// serve runs one ADS stream, SotW or delta: the initial wildcard
// subscriptions (the node with the first), then handle for each response
// until the stream or handle ends.
func serve[Req, Resp any](c *XDSClient, send func(Req) error, recv func() (Resp, error), subscribe func(typeURL string, n *corev3.Node) Req, handle func(Resp) error) error {
	for i, t := range c.opts.Types {
		n := c.node
		if i > 0 {
			n = nil
		}
		if err := send(subscribe(t, n)); err != nil {
			return err
		}
	}
	for {
		resp, err := recv()
		if err != nil {
			return endErr(err)
		}
		if err := handle(resp); err != nil {
			return err
		}
	}
}

// accepted records an ACKed response; c.mu is held.
func (c *XDSClient) accepted(typeURL, version string, size int) {
	c.acks[typeURL]++
	c.versions[typeURL] = version
	c.lastSize[typeURL] = size
	c.ackedAt[typeURL] = time.Now()
}

func (c *XDSClient) observe(typeURL string, resources []*anypb.Any) {
	if c.opts.Observe != nil {
		c.opts.Observe(typeURL, resources)
	}
}

// endErr is the stream's end as the client reports it: io.EOF (the server
// closed the stream cleanly) is no error.
func endErr(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// sendErr turns io.EOF from Send (the server ended the stream) into the
// stream's real status, which only Recv reports.
func sendErr[Resp any](err error, recv func() (Resp, error)) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	for {
		if _, rerr := recv(); rerr != nil {
			return endErr(rerr)
		}
	}
}

// sotwMerge is what a client holds after a state-of-the-world response:
// a Listener or Cluster response is the whole set; any other type's
// response carries some resources, and the client keeps those it does not
// name (the xDS protocol; Envoy drops them once nothing references them,
// which a test client does not track).
func sotwMerge(typeURL string, held, got map[string]proto.Message) map[string]proto.Message {
	if typeURL == resource.ListenerType || typeURL == resource.ClusterType || got == nil {
		return got
	}
	out := make(map[string]proto.Message, len(held)+len(got))
	for k, v := range held {
		out[k] = v
	}
	for k, v := range got {
		out[k] = v
	}
	return out
}

func decodeAll(anys []*anypb.Any) (map[string]proto.Message, error) {
	out := make(map[string]proto.Message, len(anys))
	for _, a := range anys {
		m, err := a.UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("decoding %s: %w", a.GetTypeUrl(), err)
		}
		out[ResourceName(m)] = m
	}
	return out, nil
}

// ResourceName is the xDS name of a resource.
func ResourceName(m proto.Message) string {
	switch r := m.(type) {
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName()
	case interface{ GetName() string }:
		return r.GetName()
	}
	return ""
}

// Resources returns a copy of the accepted resources of a type, by name.
func (c *XDSClient) Resources(typeURL string) map[string]proto.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]proto.Message, len(c.resources[typeURL]))
	for k, v := range c.resources[typeURL] {
		out[k] = v
	}
	return out
}

// Version returns the last accepted version of a type.
func (c *XDSClient) Version(typeURL string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.versions[typeURL]
}

// AckedAt returns when the client last ACKed a response of a type (zero
// before the first).
func (c *XDSClient) AckedAt(typeURL string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ackedAt[typeURL]
}

// Synced reports whether the client has ACKed a response of every type it
// subscribes to.
func (c *XDSClient) Synced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.opts.Types {
		if c.ackedAt[t].IsZero() {
			return false
		}
	}
	return true
}

// Counts returns how many responses of a type were ACKed and NACKed.
func (c *XDSClient) Counts(typeURL string) (acks, nacks int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.acks[typeURL], c.nacks[typeURL]
}

// LastResponseSize returns how many resources the last accepted response
// of a type carried (delta: added, changed and removed ones).
func (c *XDSClient) LastResponseSize(typeURL string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastSize[typeURL]
}

// Err returns why the stream ended, if it did with an error.
func (c *XDSClient) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// WaitFor blocks until cond (called without the client's lock) holds,
// re-checking on every received response, or ctx ends.
func (c *XDSClient) WaitFor(ctx context.Context, cond func(*XDSClient) bool) error {
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if cond(c) {
			return nil
		}
		select {
		case <-ch:
		case <-c.done:
			if cond(c) {
				return nil
			}
			if err := c.Err(); err != nil {
				return fmt.Errorf("xds stream ended: %w", err)
			}
			return fmt.Errorf("xds stream ended")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close ends the stream and the connection.
func (c *XDSClient) Close() {
	c.cancel()
	<-c.done
	c.conn.Close()
}
