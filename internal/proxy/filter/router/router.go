// Package router is the envoy.filters.http.router HTTP filter, last in
// the chain: it carries out the matched route's action — a direct
// response, a redirect, or forwarding to a cluster with header rewrites,
// timeouts, retries, mirroring, consistent-hash keys, CONNECT tunnels and
// protocol upgrades — and reports failures as *rflag.Error.
// Semantics: https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/router_filter
package router

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"

	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/rflag"
	"github.com/weftmesh/weft/internal/proxy/route"
	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// MaxBuffer is how much of a request body the router keeps so the request
// can be retried or mirrored; larger bodies stream once and are not
// retried (Envoy's per-request buffer limit semantics).
const MaxBuffer = 64 << 10

// Options configure a Router. The zero value works.
type Options struct {
	Log *slog.Logger
	// Sleep waits between retries; nil uses a timer. Tests inject one.
	Sleep func(ctx context.Context, d time.Duration) error
	// MirrorTimeout bounds a mirrored request when the route has no
	// timeout (default 15s).
	MirrorTimeout time.Duration
}

// Router is a compiled router filter.
type Router struct {
	log           *slog.Logger
	sleep         func(ctx context.Context, d time.Duration) error
	mirrorTimeout time.Duration
	suppress      bool // suppress_envoy_headers
}

var _ filter.Filter = (*Router)(nil)

// New compiles the router filter's config (nil: defaults).
func New(cfg *routerv3.Router, opts Options) (*Router, error) {
	if err := xdsfield.Check(cfg, route.RouterFilter, "dynamic_stats", "start_child_span",
		"suppress_envoy_headers"); err != nil {
		return nil, err
	}
	r := &Router{log: opts.Log, sleep: opts.Sleep, mirrorTimeout: opts.MirrorTimeout,
		suppress: cfg.GetSuppressEnvoyHeaders()}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.sleep == nil {
		r.sleep = timerSleep
	}
	if r.mirrorTimeout == 0 {
		r.mirrorTimeout = route.DefaultTimeout
	}
	return r, nil
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

// Errors the router reports; the connection manager writes their bodies.
var (
	errNoRoute = &rflag.Error{Flag: rflag.NR, Status: http.StatusNotFound, Details: "route_not_found"}
	errNoVHost = &rflag.Error{Flag: rflag.NR, Status: http.StatusNotFound, Details: "route_not_found"}
)

// Serve carries out the route's action.
func (rt *Router) Serve(s *filter.Stream) error {
	if s.Route == nil {
		if s.VHost == nil {
			return errNoVHost
		}
		return errNoRoute
	}
	s.Info.RouteName = s.Route.Name
	s.Info.Operation, s.Info.Propagate = s.Route.Operation, s.Route.Propagate
	if s.Info.Tracing == filter.TraceEgress && s.Route.Propagate && s.Route.Operation != "" {
		// Envoy sends an egress route's decorator to the upstream, whose
		// proxy names its server span after it.
		s.Req.Header[filter.HeaderDecoratorOperation] = []string{s.Route.Operation}
	}
	switch s.Route.Kind {
	case route.ActionDirect:
		d := s.Route.Direct
		h := s.W.Header()
		rt.responseHeaders(s, nil, h)
		if len(d.Body) > 0 {
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Length", strconv.Itoa(len(d.Body)))
		}
		s.Info.Details = "direct_response"
		s.W.WriteHeader(d.Status)
		if len(d.Body) > 0 && s.Req.Method != http.MethodHead {
			s.W.Write(d.Body)
		}
		return nil
	case route.ActionRedirect:
		h := s.W.Header()
		rt.responseHeaders(s, nil, h)
		h.Set("Location", s.Route.Location(s.Req, s.Req.TLS != nil))
		s.Info.Details = "via_route_redirect"
		s.W.WriteHeader(s.Route.Redirect.Code)
		return nil
	}
	a := s.Route.Action
	name, wc := a.PickCluster(s.Req, rand.Uint64())
	s.Info.Cluster = name
	up := s.Env.Upstream(name)
	if up == nil {
		return &rflag.Error{Flag: rflag.NC, Status: http.StatusServiceUnavailable, Details: "cluster_not_found",
			Err: fmt.Errorf("cluster %q", name)}
	}
	if s.Req.Method == http.MethodConnect {
		return rt.connect(s, up)
	}
	if t := upgradeType(s.Req); t != "" && rt.upgradeAllowed(s, t) {
		return rt.upgrade(s, up, wc)
	}
	return rt.forward(s, up, wc)
}

// upgradeAllowed: a route-level upgrade config overrides the manager's.
func (rt *Router) upgradeAllowed(s *filter.Stream, t string) bool {
	if en, set := s.Route.Action.UpgradeEnabled(t); set {
		return en
	}
	return s.Config != nil && s.Config.Upgrades[t]
}

// requestHeaders applies header mutations in Envoy's order: weighted
// cluster, route, virtual host, route configuration (the least specific
// runs last, so it wins on overwrite).
func requestHeaders(s *filter.Stream, wc *route.WeightedCluster, h http.Header) {
	if wc != nil {
		wc.Headers.Request.Apply(h)
	}
	s.Route.Headers.Request.Apply(h)
	s.VHost.Headers.Request.Apply(h)
	s.Table.Headers.Request.Apply(h)
}

func (rt *Router) responseHeaders(s *filter.Stream, wc *route.WeightedCluster, h http.Header) {
	if wc != nil {
		wc.Headers.Response.Apply(h)
	}
	s.Route.Headers.Response.Apply(h)
	s.VHost.Headers.Response.Apply(h)
	s.Table.Headers.Response.Apply(h)
	s.ApplyResponseHeaders(h)
}
