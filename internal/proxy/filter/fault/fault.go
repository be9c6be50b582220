// Package fault is the envoy.filters.http.fault HTTP filter: it delays
// and/or aborts a percentage of requests, as configured in the filter or
// overridden per route (Istio's VirtualService fault injection). Delays set
// the DI response flag, aborts FI with the body "fault filter abort".
// Semantics: https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/fault_filter
package fault

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"

	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/rflag"
	"github.com/weftmesh/weft/internal/proxy/route"
)

// Request headers that control header-driven faults (only when the
// configuration asks for header_delay / header_abort).
const (
	hdrDelay        = "X-Envoy-Fault-Delay-Request"
	hdrDelayPercent = "X-Envoy-Fault-Delay-Request-Percentage"
	hdrAbort        = "X-Envoy-Fault-Abort-Request"
	hdrAbortGrpc    = "X-Envoy-Fault-Abort-Grpc-Request"
	hdrAbortPercent = "X-Envoy-Fault-Abort-Request-Percentage"
	hdrNode         = "X-Envoy-Downstream-Service-Node"
)

// Sleeper waits for d or until ctx is done (injected so tests can avoid real
// delays); it returns ctx.Err() when cancelled.
type Sleeper func(ctx context.Context, d time.Duration) error

// Filter is a compiled fault filter.
type Filter struct {
	cfg    *route.Fault // filter-level config; routes may override
	active atomic.Int64 // faults in progress (max_active_faults)
	sleep  Sleeper
}

var _ filter.Filter = (*Filter)(nil)

// New compiles the filter's own config. sleep may be nil (real timers).
func New(cfg *faultv3.HTTPFault, sleep Sleeper) (*Filter, error) {
	f := &Filter{sleep: sleep}
	if f.sleep == nil {
		f.sleep = timerSleep
	}
	if cfg != nil {
		c, err := route.CompileFault(cfg, route.FaultFilter)
		if err != nil {
			return nil, err
		}
		f.cfg = c
	}
	return f, nil
}

func timerSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Serve applies the delay, then the abort (Envoy's order), then continues.
func (f *Filter) Serve(s *filter.Stream) error {
	cfg := f.cfg
	if s.Route != nil && s.Route.Fault != nil {
		cfg = s.Route.Fault // a per-route config replaces the filter's
	}
	if cfg == nil || !f.applies(cfg, s) {
		return s.Next()
	}
	if cfg.MaxActive > 0 {
		if f.active.Add(1) > int64(cfg.MaxActive) {
			f.active.Add(-1)
			return s.Next()
		}
		defer f.active.Add(-1)
	}
	r := s.Req
	if d, ok := delayFor(cfg, r); ok && d > 0 {
		s.Info.Flags |= rflag.DI
		if err := f.sleep(r.Context(), d); err != nil {
			return &rflag.Error{Flag: rflag.DC, Details: "downstream_remote_disconnect", Err: err}
		}
	}
	if status, grpc, ok := abortFor(cfg, r); ok {
		return &rflag.Error{Flag: rflag.FI, Status: status, Details: "fault_filter_abort", Err: grpcStatus(grpc)}
	}
	return s.Next()
}

// GrpcStatus carries the grpc-status of a gRPC abort through rflag.Error.Err.
type GrpcStatus string

func (g GrpcStatus) Error() string { return "grpc-status " + string(g) }

func grpcStatus(s string) error {
	if s == "" {
		return nil
	}
	return GrpcStatus(s)
}

func (f *Filter) applies(cfg *route.Fault, s *filter.Stream) bool {
	if cfg.UpstreamCluster != "" && (s.Route == nil || s.Route.Action == nil || s.Route.Action.Cluster != cfg.UpstreamCluster) {
		return false
	}
	for _, h := range cfg.Headers {
		if !h.Match(s.Req) {
			return false
		}
	}
	if len(cfg.DownstreamNodes) > 0 {
		node := s.Req.Header.Get(hdrNode)
		found := false
		for _, n := range cfg.DownstreamNodes {
			if n == node {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// headerPercent caps the configured fraction with the request's percentage
// header (Envoy: the header may lower, never raise, the configured value).
func headerPercent(fr route.Fraction, r *http.Request, name string) route.Fraction {
	v := r.Header.Get(name)
	if v == "" {
		return fr
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil {
		return fr
	}
	// The header's value has the configured denominator.
	if n < fr.Num {
		fr.Num = n
	}
	return fr
}

func delayFor(cfg *route.Fault, r *http.Request) (time.Duration, bool) {
	if !cfg.HasDelay {
		return 0, false
	}
	d := cfg.Delay
	fr := cfg.DelayFraction
	if cfg.HeaderDelay {
		ms, err := strconv.ParseUint(strings.TrimSpace(r.Header.Get(hdrDelay)), 10, 32)
		if err != nil {
			return 0, false
		}
		d = time.Duration(ms) * time.Millisecond
		fr = headerPercent(fr, r, hdrDelayPercent)
	}
	if !fr.Hit() {
		return 0, false
	}
	return d, true
}

func abortFor(cfg *route.Fault, r *http.Request) (int, string, bool) {
	if !cfg.HasAbort {
		return 0, "", false
	}
	status, grpc := cfg.AbortStatus, cfg.AbortGrpc
	fr := cfg.AbortFraction
	if cfg.HeaderAbort {
		status, grpc = 0, ""
		if v := r.Header.Get(hdrAbortGrpc); v != "" {
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 8); err == nil {
				status, grpc = http.StatusOK, strconv.FormatUint(n, 10)
			}
		} else if n, err := strconv.Atoi(strings.TrimSpace(r.Header.Get(hdrAbort))); err == nil && n >= 200 && n < 600 {
			status = n
		}
		if status == 0 {
			return 0, "", false
		}
		fr = headerPercent(fr, r, hdrAbortPercent)
	}
	if !fr.Hit() {
		return 0, "", false
	}
	return status, grpc, true
}
