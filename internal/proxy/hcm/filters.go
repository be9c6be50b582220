package hcm

import (
	"fmt"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/filter/cors"
	"github.com/weftmesh/weft/internal/proxy/filter/extauthz"
	"github.com/weftmesh/weft/internal/proxy/filter/fault"
	"github.com/weftmesh/weft/internal/proxy/filter/jwtauthn"
	"github.com/weftmesh/weft/internal/proxy/filter/rbac"
	"github.com/weftmesh/weft/internal/proxy/filter/router"
)

// builder compiles one HTTP filter from its typed config.
type builder struct {
	rank  int // Envoy order: fault, jwt_authn, rbac, cors, ratelimit, router
	msg   func() proto.Message
	build func(m *Manager, cfg proto.Message, opts Options) (filter.Filter, error)
}

// Filter ranks in Envoy's order. Rank 4 (local rate limit) is reserved
// for a filter that lands later. ext_authz shares rbac's rank: Istio
// interleaves them (CUSTOM's shadow rbac, ext_authz, DENY rbac, ALLOW rbac).
const (
	rankFault  = 0
	rankJWT    = 1
	rankRBAC   = 2
	rankCors   = 3
	rankRouter = 5
)

// builderFor finds the builder for a typed_config type URL.
func builderFor(typeURL string) (builder, bool) {
	switch typeURL {
	case "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault":
		return builder{rankFault,
			func() proto.Message { return &faultv3.HTTPFault{} },
			func(m *Manager, cfg proto.Message, opts Options) (filter.Filter, error) {
				return fault.New(cfg.(*faultv3.HTTPFault), opts.Sleep)
			}}, true
	case "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication":
		return builder{rankJWT,
			func() proto.Message { return &jwtv3.JwtAuthentication{} },
			func(m *Manager, cfg proto.Message, opts Options) (filter.Filter, error) {
				return jwtauthn.New(cfg.(*jwtv3.JwtAuthentication), jwtauthn.Options{Counters: opts.Counters,
					StatPrefix: "http." + m.statPrefix + "."})
			}}, true
	case "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz":
		return builder{rankRBAC,
			func() proto.Message { return &extauthzv3.ExtAuthz{} },
			func(m *Manager, cfg proto.Message, opts Options) (filter.Filter, error) {
				return extauthz.New(cfg.(*extauthzv3.ExtAuthz), extauthz.Options{Log: m.log, Env: m.ups})
			}}, true
	case "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC":
		return builder{rankRBAC,
			func() proto.Message { return &rbachttpv3.RBAC{} },
			func(m *Manager, cfg proto.Message, opts Options) (filter.Filter, error) {
				return rbac.NewHTTP(cfg.(*rbachttpv3.RBAC), rbac.Options{Log: m.log, Counters: opts.Counters,
					StatPrefix: "http." + m.statPrefix + "."})
			}}, true
	case "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors":
		return builder{rankCors,
			func() proto.Message { return &corsv3.Cors{} },
			func(m *Manager, cfg proto.Message, opts Options) (filter.Filter, error) {
				return cors.Filter{}, nil
			}}, true
	case "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router":
		return builder{rankRouter,
			func() proto.Message { return &routerv3.Router{} },
			func(m *Manager, cfg proto.Message, opts Options) (filter.Filter, error) {
				return router.New(cfg.(*routerv3.Router), router.Options{Log: m.log, Sleep: opts.Sleep})
			}}, true
	}
	return builder{}, false
}

func (m *Manager) compileFilters(hfs []*hcmv3.HttpFilter, opts Options, path string) error {
	rank := -1
	for i, hf := range hfs {
		p := fmt.Sprintf("%s[%d %q]", path, i, hf.GetName())
		if hf.GetDisabled() {
			return fmt.Errorf("%s.disabled: not supported by weft-proxy", p)
		}
		tc := hf.GetTypedConfig()
		if tc == nil {
			return fmt.Errorf("%s.typed_config: required", p)
		}
		b, ok := builderFor(tc.GetTypeUrl())
		if !ok {
			if hf.GetIsOptional() {
				continue // Envoy skips unknown optional filters
			}
			return fmt.Errorf("%s: filter type %s not supported by weft-proxy", p, tc.GetTypeUrl())
		}
		if b.rank < rank {
			return fmt.Errorf("%s: out of order (weft-proxy runs fault, jwt_authn, rbac, cors, ratelimit, router)", p)
		}
		rank = b.rank
		msg := b.msg()
		if err := anypb.UnmarshalTo(tc, msg, proto.UnmarshalOptions{}); err != nil {
			return fmt.Errorf("%s.typed_config: %w", p, err)
		}
		f, err := b.build(m, msg, opts)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		m.filters = append(m.filters, f)
		if b.rank == rankRouter && i != len(hfs)-1 {
			return fmt.Errorf("%s: the router must be the last filter", p)
		}
	}
	if rank != rankRouter {
		return fmt.Errorf("%s: the last filter must be envoy.filters.http.router", path)
	}
	return nil
}
