package route

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// HTTP filter names as they appear in http_filters and typed_per_filter_config.
const (
	FaultFilter  = "envoy.filters.http.fault"
	CorsFilter   = "envoy.filters.http.cors"
	RouterFilter = "envoy.filters.http.router"
)

func compilePerFilter(m map[string]*anypb.Any, path string) (perFilter, error) {
	var pf perFilter
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		a := m[name]
		p := fmt.Sprintf("%s[%q]", path, name)
		if a.MessageIs(&routev3.FilterConfig{}) {
			fc := &routev3.FilterConfig{}
			if err := a.UnmarshalTo(fc); err != nil {
				return pf, fmt.Errorf("%s: %w", p, err)
			}
			if fc.GetDisabled() {
				return pf, fmt.Errorf("%s.disabled: not supported by weft-proxy", p)
			}
			a = fc.GetConfig()
		}
		switch name {
		case FaultFilter:
			cfg := &faultv3.HTTPFault{}
			if err := a.UnmarshalTo(cfg); err != nil {
				return pf, fmt.Errorf("%s: %w", p, err)
			}
			f, err := CompileFault(cfg, p)
			if err != nil {
				return pf, err
			}
			pf.fault = f
		case CorsFilter:
			cfg := &corsv3.CorsPolicy{}
			if err := a.UnmarshalTo(cfg); err != nil {
				return pf, fmt.Errorf("%s: %w", p, err)
			}
			c, err := compileCors(cfg, p)
			if err != nil {
				return pf, err
			}
			pf.cors = c
		default:
			return pf, fmt.Errorf("%s: per-route config for filter %q not supported by weft-proxy", path, name)
		}
	}
	return pf, nil
}

// Fault is a compiled HTTPFault (the fault filter's own config, or a
// per-route override that replaces it entirely).
type Fault struct {
	Delay         time.Duration
	HeaderDelay   bool // x-envoy-fault-delay-request decides the delay
	DelayFraction Fraction
	HasDelay      bool

	AbortStatus   int    // HTTP status
	AbortGrpc     string // grpc-status, "" when HTTP
	HeaderAbort   bool   // x-envoy-fault-abort-request(-grpc) decides
	AbortFraction Fraction
	HasAbort      bool

	Headers         []*HeaderMatch // all must match for the fault to apply
	DownstreamNodes []string       // x-envoy-downstream-service-node must be one of these
	UpstreamCluster string
	MaxActive       int // 0: unlimited
}

// CompileFault compiles an HTTPFault; path names it in errors.
func CompileFault(f *faultv3.HTTPFault, path string) (*Fault, error) {
	if err := xdsfield.Check(f, path, "delay", "abort", "headers", "downstream_nodes", "max_active_faults",
		"upstream_cluster", "disable_downstream_cluster_stats"); err != nil {
		return nil, err
	}
	out := &Fault{DownstreamNodes: f.GetDownstreamNodes(), UpstreamCluster: f.GetUpstreamCluster(),
		MaxActive: int(f.GetMaxActiveFaults().GetValue())}
	if d := f.GetDelay(); d != nil {
		if err := xdsfield.Check(d, path+".delay", "fixed_delay", "header_delay", "percentage"); err != nil {
			return nil, err
		}
		out.HasDelay, out.DelayFraction = true, CompileFraction(d.GetPercentage())
		switch {
		case d.GetHeaderDelay() != nil:
			out.HeaderDelay = true
		case d.GetFixedDelay() != nil:
			out.Delay = Dur(d.GetFixedDelay())
		default:
			return nil, fmt.Errorf("%s.delay: fixed_delay or header_delay is required", path)
		}
	}
	if a := f.GetAbort(); a != nil {
		if err := xdsfield.Check(a, path+".abort", "http_status", "grpc_status", "header_abort", "percentage"); err != nil {
			return nil, err
		}
		out.HasAbort, out.AbortFraction = true, CompileFraction(a.GetPercentage())
		switch e := a.GetErrorType().(type) {
		case *faultv3.FaultAbort_HttpStatus:
			if e.HttpStatus < 200 || e.HttpStatus >= 600 {
				return nil, fmt.Errorf("%s.abort.http_status: %d is not in [200, 600)", path, e.HttpStatus)
			}
			out.AbortStatus = int(e.HttpStatus)
		case *faultv3.FaultAbort_GrpcStatus:
			out.AbortStatus, out.AbortGrpc = http.StatusOK, strconv.Itoa(int(e.GrpcStatus))
		case *faultv3.FaultAbort_HeaderAbort_:
			out.HeaderAbort = true
		default:
			return nil, fmt.Errorf("%s.abort: an error type is required", path)
		}
	}
	for i, h := range f.GetHeaders() {
		hm, err := CompileHeaderMatch(h, fmt.Sprintf("%s.headers[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out.Headers = append(out.Headers, hm)
	}
	return out, nil
}

// Cors is a compiled CORS policy.
type Cors struct {
	Origins          []*StringMatch
	AllowMethods     string
	AllowHeaders     string
	ExposeHeaders    string
	MaxAge           string
	AllowCredentials bool
	Enabled          Fraction
	// Shadow: evaluate but do not enforce (only when not Enabled).
	Shadow                    *Fraction
	AllowPrivateNetworkAccess bool
	// ForwardNotMatching: a preflight whose origin does not match is
	// forwarded upstream (Envoy's default true).
	ForwardNotMatching bool
}

// corsConfig is what the cors filter's CorsPolicy and the deprecated
// route/virtual-host CorsPolicy have in common: the same fields, two types.
type corsConfig interface {
	proto.Message
	GetAllowOriginStringMatch() []*matcherv3.StringMatcher
	GetAllowMethods() string
	GetAllowHeaders() string
	GetExposeHeaders() string
	GetMaxAge() string
	GetAllowCredentials() *wrapperspb.BoolValue
	GetFilterEnabled() *corev3.RuntimeFractionalPercent
	GetShadowEnabled() *corev3.RuntimeFractionalPercent
	GetAllowPrivateNetworkAccess() *wrapperspb.BoolValue
	GetForwardNotMatchingPreflights() *wrapperspb.BoolValue
}

var (
	_ corsConfig = (*corsv3.CorsPolicy)(nil)
	_ corsConfig = (*routev3.CorsPolicy)(nil)
)

func compileCors(c corsConfig, path string) (*Cors, error) {
	if err := xdsfield.Check(c, path, "allow_origin_string_match", "allow_methods", "allow_headers",
		"expose_headers", "max_age", "allow_credentials", "filter_enabled", "shadow_enabled",
		"allow_private_network_access", "forward_not_matching_preflights"); err != nil {
		return nil, err
	}
	out := &Cors{AllowMethods: c.GetAllowMethods(), AllowHeaders: c.GetAllowHeaders(),
		ExposeHeaders: c.GetExposeHeaders(), MaxAge: c.GetMaxAge(),
		AllowCredentials:          c.GetAllowCredentials().GetValue(),
		Enabled:                   Fraction{Num: 1, Den: 1},
		AllowPrivateNetworkAccess: c.GetAllowPrivateNetworkAccess().GetValue(),
		ForwardNotMatching:        c.GetForwardNotMatchingPreflights() == nil || c.GetForwardNotMatchingPreflights().GetValue()}
	if c.GetFilterEnabled() != nil {
		out.Enabled = compileRuntimeFraction(c.GetFilterEnabled())
	}
	if c.GetShadowEnabled() != nil {
		f := compileRuntimeFraction(c.GetShadowEnabled())
		out.Shadow = &f
	}
	return out, out.compileOrigins(c.GetAllowOriginStringMatch(), path)
}

func (out *Cors) compileOrigins(ms []*matcherv3.StringMatcher, path string) error {
	for i, m := range ms {
		s, err := CompileStringMatch(m, fmt.Sprintf("%s.allow_origin_string_match[%d]", path, i))
		if err != nil {
			return err
		}
		out.Origins = append(out.Origins, s)
	}
	if _, err := out.maxAgeValid(); err != nil {
		return fmt.Errorf("%s.max_age: %w", path, err)
	}
	return nil
}

func (out *Cors) maxAgeValid() (int, error) {
	if out.MaxAge == "" {
		return 0, nil
	}
	return strconv.Atoi(strings.TrimSpace(out.MaxAge))
}

// AllowsOrigin reports whether origin matches one of the allowed origins.
func (c *Cors) AllowsOrigin(origin string) bool {
	for _, m := range c.Origins {
		if m.Match(origin) {
			return true
		}
	}
	return false
}
