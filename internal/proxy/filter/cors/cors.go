// Package cors is the envoy.filters.http.cors HTTP filter: it answers CORS
// preflight requests and adds CORS headers to responses, following the
// policy of the matched route or virtual host (Istio's corsPolicy).
// Semantics: https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/cors_filter
package cors

import (
	"net/http"

	"github.com/weftmesh/weft/internal/proxy/filter"
)

// Filter is the CORS filter. The filter itself has no configuration: the
// policies live on routes and virtual hosts.
type Filter struct{}

var _ filter.Filter = Filter{}

// Serve handles preflights and decorates simple requests' responses.
func (Filter) Serve(s *filter.Stream) error {
	if s.Route == nil || s.Route.Cors == nil {
		return s.Next()
	}
	c := s.Route.Cors
	r := s.Req
	origin := r.Header.Get("Origin")
	if origin == "" {
		return s.Next()
	}
	if !c.Enabled.Hit() {
		// Shadow mode evaluates without enforcing; there is no stat sink
		// yet, so it is a pass-through.
		return s.Next()
	}
	allowed := c.AllowsOrigin(origin)
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if preflight {
		if !allowed {
			if c.ForwardNotMatching {
				return s.Next()
			}
			s.W.WriteHeader(http.StatusOK)
			s.Info.Status, s.Info.Details = http.StatusOK, "cors_response"
			return nil
		}
		h := s.W.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		if c.AllowCredentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if c.AllowMethods != "" {
			h.Set("Access-Control-Allow-Methods", c.AllowMethods)
		}
		if c.AllowHeaders != "" {
			h.Set("Access-Control-Allow-Headers", c.AllowHeaders)
		}
		if c.MaxAge != "" {
			h.Set("Access-Control-Max-Age", c.MaxAge)
		}
		if c.AllowPrivateNetworkAccess && r.Header.Get("Access-Control-Request-Private-Network") == "true" {
			h.Set("Access-Control-Allow-Private-Network", "true")
		}
		s.W.WriteHeader(http.StatusOK)
		s.Info.Status, s.Info.Details = http.StatusOK, "cors_response"
		return nil
	}
	if allowed {
		s.SetResponseHeader("Access-Control-Allow-Origin", origin)
		if c.AllowCredentials {
			s.SetResponseHeader("Access-Control-Allow-Credentials", "true")
		}
		if c.ExposeHeaders != "" {
			s.SetResponseHeader("Access-Control-Expose-Headers", c.ExposeHeaders)
		}
	}
	return s.Next()
}
