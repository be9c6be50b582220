package xds

import (
	"context"
	"errors"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// One node ID, one stream: when a second stream opens for a node ID that
// has one, the newer wins and the older is ended (Envoy and Istio reconnect
// this way after a half-open connection; an impostor stream must not share
// a live proxy's state either). The gRPC handlers are wrapped so the server
// can end a stream go-control-plane is serving: the wrapped stream's Recv
// fails once the stream is superseded, which ends go-control-plane's loop.

// errSuperseded ends a stream replaced by a newer one for its node ID.
var errSuperseded = errors.New("a newer xDS stream for this node ID replaced this one")

// errDrainingLoses refuses a draining proxy's new stream while another
// stream serves its node ID.
var errDrainingLoses = errors.New("a draining proxy does not replace the node's serving stream")

// streamHandle lets the server end one stream.
type streamHandle struct {
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the stream's handler returned
}

type handleKey struct{}

// handleOf returns the handle a wrapped stream's context carries.
func handleOf(ctx context.Context) *streamHandle {
	h, _ := ctx.Value(handleKey{}).(*streamHandle)
	return h
}

// ads is the gRPC ADS service: go-control-plane's, with supersedable streams.
type ads struct{ s *Server }

func (a ads) StreamAggregatedResources(st discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	ctx, h := newHandle(st.Context())
	defer close(h.done)
	w := &sotwStream{AggregatedDiscoveryService_StreamAggregatedResourcesServer: st, ctx: ctx, in: pump(ctx, st.Recv)}
	return endErr(ctx, a.s.grpcSrv.StreamAggregatedResources(w))
}

func (a ads) DeltaAggregatedResources(st discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	ctx, h := newHandle(st.Context())
	defer close(h.done)
	w := &deltaStream{AggregatedDiscoveryService_DeltaAggregatedResourcesServer: st, ctx: ctx, in: pump(ctx, st.Recv)}
	return endErr(ctx, a.s.grpcSrv.DeltaAggregatedResources(w))
}

func newHandle(parent context.Context) (context.Context, *streamHandle) {
	ctx, cancel := context.WithCancelCause(parent)
	h := &streamHandle{cancel: cancel, done: make(chan struct{})}
	return context.WithValue(ctx, handleKey{}, h), h
}

// endErr tells a superseded client why its stream ended.
func endErr(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errSuperseded) {
		return status.Error(codes.Aborted, errSuperseded.Error())
	}
	return err
}

type received[T any] struct {
	m   T
	err error
}

// pump reads the gRPC stream on a goroutine of its own so that a Recv of
// the wrapped stream can also end when ctx does. It stops at the first
// error, which the end of the RPC guarantees.
func pump[T any](ctx context.Context, recv func() (T, error)) <-chan received[T] {
	ch := make(chan received[T])
	go func() {
		for {
			m, err := recv()
			select {
			case ch <- received[T]{m, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

func next[T any](ctx context.Context, in <-chan received[T]) (T, error) {
	select {
	case r := <-in:
		return r.m, r.err
	case <-ctx.Done():
		var zero T
		return zero, context.Cause(ctx)
	}
}

type sotwStream struct {
	discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesServer
	ctx context.Context
	in  <-chan received[*discoverygrpc.DiscoveryRequest]
}

func (w *sotwStream) Context() context.Context { return w.ctx }
func (w *sotwStream) Recv() (*discoverygrpc.DiscoveryRequest, error) {
	return next(w.ctx, w.in)
}

type deltaStream struct {
	discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesServer
	ctx context.Context
	in  <-chan received[*discoverygrpc.DeltaDiscoveryRequest]
}

func (w *deltaStream) Context() context.Context { return w.ctx }
func (w *deltaStream) Recv() (*discoverygrpc.DeltaDiscoveryRequest, error) {
	return next(w.ctx, w.in)
}
