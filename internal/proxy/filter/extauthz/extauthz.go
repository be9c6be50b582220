// Package extauthz is Envoy's envoy.filters.http.ext_authz for weft-proxy:
// Istio's CUSTOM action. For a request an earlier RBAC filter marked (its
// shadow rules matched a CUSTOM policy: filter_enabled_metadata), it asks
// an external authorization service over Envoy's HTTP protocol (the check
// request mirrors the original's method and path, with selected headers)
// or its gRPC protocol (envoy.service.auth.v3.Authorization/Check), and
// either lets the request on (with the headers the service adds) or
// answers with the service's denial (flag UAEX). A service that cannot be
// reached fails closed with status_on_error (403) unless
// failure_mode_allow.
package extauthz

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/grpc"

	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/rflag"
	"github.com/weftmesh/weft/internal/proxy/route"
	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// maxBody bounds what is read of an authorization response.
const maxBody = 64 << 10

// Options for the filter.
type Options struct {
	Log *slog.Logger
	// Env resolves the authorization service's cluster.
	Env filter.Env
}

// Filter is the compiled ext_authz filter; safe for concurrent use.
type Filter struct {
	log       *slog.Logger
	env       filter.Env
	cluster   string
	timeout   time.Duration
	failOpen  bool
	onError   int
	enabled   *enabledMatch
	checkHTTP *httpCheck
	checkGRPC *grpcCheck
}

var _ filter.Filter = (*Filter)(nil)

// enabledMatch is filter_enabled_metadata: one metadata key compared with
// a string matcher (Istio's shape).
type enabledMatch struct {
	filter, key string
	s           *route.StringMatch
	invert      bool
}

func (e *enabledMatch) match(m *filter.Metadata) bool {
	v, ok := m.Lookup(e.filter, []string{e.key})
	s, isStr := v.(string)
	return (ok && isStr && e.s.Match(s)) != e.invert
}

// headerList is a compiled ListStringMatcher over header names.
type headerList []*route.StringMatch

func compileList(l *matcherv3.ListStringMatcher, path string) (headerList, error) {
	if l == nil {
		return nil, nil
	}
	var out headerList
	for i, p := range l.GetPatterns() {
		m, err := route.CompileStringMatch(p, fmt.Sprintf("%s.patterns[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func (l headerList) has(name string) bool {
	for _, m := range l {
		if m.Match(name) || m.Match(strings.ToLower(name)) {
			return true
		}
	}
	return false
}

// New compiles an ExtAuthz.
func New(cfg *extauthzv3.ExtAuthz, o Options) (*Filter, error) {
	const p = "ext_authz"
	if err := xdsfield.Check(cfg, p, "http_service", "grpc_service", "transport_api_version", "failure_mode_allow",
		"status_on_error", "filter_enabled_metadata", "allowed_headers", "clear_route_cache"); err != nil {
		return nil, err
	}
	f := &Filter{log: o.Log, env: o.Env, failOpen: cfg.GetFailureModeAllow(), onError: http.StatusForbidden}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.env == nil {
		return nil, fmt.Errorf("%s: no cluster environment", p)
	}
	if c := cfg.GetStatusOnError().GetCode(); c != 0 {
		f.onError = int(c)
	}
	if m := cfg.GetFilterEnabledMetadata(); m != nil {
		if err := xdsfield.Check(m, p+".filter_enabled_metadata", "filter", "path", "value", "invert"); err != nil {
			return nil, err
		}
		if len(m.GetPath()) != 1 || m.GetPath()[0].GetKey() == "" || m.GetValue().GetStringMatch() == nil {
			return nil, fmt.Errorf("%s.filter_enabled_metadata: only one path key with a string_match is supported by weft-proxy", p)
		}
		s, err := route.CompileStringMatch(m.GetValue().GetStringMatch(), p+".filter_enabled_metadata.value.string_match")
		if err != nil {
			return nil, err
		}
		f.enabled = &enabledMatch{filter: m.GetFilter(), key: m.GetPath()[0].GetKey(), s: s, invert: m.GetInvert()}
	}
	allowed, err := compileList(cfg.GetAllowedHeaders(), p+".allowed_headers")
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.GetHttpService() != nil:
		hs := cfg.GetHttpService()
		if err := xdsfield.Check(hs, p+".http_service", "server_uri", "path_prefix", "authorization_request", "authorization_response"); err != nil {
			return nil, err
		}
		su := hs.GetServerUri()
		if su.GetCluster() == "" {
			return nil, fmt.Errorf("%s.http_service.server_uri.cluster: required", p)
		}
		u, err := url.Parse(su.GetUri())
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("%s.http_service.server_uri.uri: %q is not an absolute URI", p, su.GetUri())
		}
		f.cluster, f.timeout = su.GetCluster(), route.Dur(su.GetTimeout())
		hc := &httpCheck{host: u.Host, prefix: hs.GetPathPrefix(), allowed: allowed}
		if ar := hs.GetAuthorizationRequest(); ar != nil {
			if err := xdsfield.Check(ar, p+".http_service.authorization_request", "headers_to_add", "allowed_headers"); err != nil {
				return nil, err
			}
			more, err := compileList(ar.GetAllowedHeaders(), p+".http_service.authorization_request.allowed_headers")
			if err != nil {
				return nil, err
			}
			hc.allowed = append(hc.allowed, more...)
			for _, h := range ar.GetHeadersToAdd() {
				hc.add = append(hc.add, filter.Header{Key: http.CanonicalHeaderKey(h.GetKey()), Value: h.GetValue()})
			}
		}
		if ar := hs.GetAuthorizationResponse(); ar != nil {
			if err := xdsfield.Check(ar, p+".http_service.authorization_response", "allowed_upstream_headers",
				"allowed_client_headers", "allowed_client_headers_on_success"); err != nil {
				return nil, err
			}
			if hc.toUpstream, err = compileList(ar.GetAllowedUpstreamHeaders(), p+".allowed_upstream_headers"); err != nil {
				return nil, err
			}
			if hc.toClient, err = compileList(ar.GetAllowedClientHeaders(), p+".allowed_client_headers"); err != nil {
				return nil, err
			}
			if hc.toClientOK, err = compileList(ar.GetAllowedClientHeadersOnSuccess(), p+".allowed_client_headers_on_success"); err != nil {
				return nil, err
			}
		}
		f.checkHTTP = hc
	case cfg.GetGrpcService() != nil:
		gs := cfg.GetGrpcService()
		if err := xdsfield.Check(gs, p+".grpc_service", "envoy_grpc", "timeout"); err != nil {
			return nil, err
		}
		eg := gs.GetEnvoyGrpc()
		if eg == nil || eg.GetClusterName() == "" {
			return nil, fmt.Errorf("%s.grpc_service.envoy_grpc.cluster_name: required (google_grpc is not supported by weft-proxy)", p)
		}
		f.cluster, f.timeout = eg.GetClusterName(), route.Dur(gs.GetTimeout())
		authority := eg.GetAuthority()
		if authority == "" {
			authority = eg.GetClusterName()
		}
		f.checkGRPC = &grpcCheck{authority: authority, env: f.env, cluster: f.cluster}
	default:
		return nil, fmt.Errorf("%s: http_service or grpc_service is required", p)
	}
	if f.timeout <= 0 {
		f.timeout = 200 * time.Millisecond // Envoy's default
	}
	return f, nil
}

// decision is what the service said.
type decision struct {
	allowed  bool
	status   int
	header   http.Header // to the client (deny) or onto the response (allow)
	upstream []filter.Header
	remove   []string
	body     string
}

// Serve asks the service about requests the RBAC filter marked.
func (f *Filter) Serve(s *filter.Stream) error {
	if f.enabled != nil && !f.enabled.match(&s.Meta) {
		return s.Next()
	}
	ctx, cancel := context.WithTimeout(s.Req.Context(), f.timeout)
	defer cancel()
	var d decision
	var err error
	if f.checkHTTP != nil {
		d, err = f.checkHTTP.check(ctx, f.env, f.cluster, s)
	} else {
		d, err = f.checkGRPC.check(ctx, s)
	}
	if err != nil {
		f.log.Warn("ext_authz check failed", "cluster", f.cluster, "err", err, "fail_open", f.failOpen)
		if f.failOpen {
			return s.Next()
		}
		return &rflag.Error{Flag: rflag.UAEX, Status: f.onError, Details: "ext_authz_error", Err: err}
	}
	if !d.allowed {
		h := s.W.Header()
		for k, v := range d.header {
			h[k] = v
		}
		s.Info.Flags |= rflag.UAEX
		s.Info.Details = "ext_authz_denied"
		s.W.WriteHeader(d.status)
		if d.body != "" && s.Req.Method != http.MethodHead {
			io.WriteString(s.W, d.body)
		}
		return nil
	}
	for _, k := range d.remove {
		s.Req.Header.Del(k)
	}
	for _, h := range d.upstream {
		s.Req.Header[h.Key] = []string{h.Value}
	}
	for k, v := range d.header {
		if len(v) > 0 {
			s.SetResponseHeader(k, v[0])
		}
	}
	return s.Next()
}

// httpCheck is the HTTP protocol.
type httpCheck struct {
	host                 string
	prefix               string
	allowed              headerList
	add                  []filter.Header
	toUpstream, toClient headerList
	toClientOK           headerList
}

// always are the headers Envoy sends to an HTTP authorization service.
var always = map[string]bool{"Authorization": true, "Content-Length": false}

func (c *httpCheck) check(ctx context.Context, env filter.Env, cluster string, s *filter.Stream) (decision, error) {
	up := env.Upstream(cluster)
	if up == nil {
		return decision{}, fmt.Errorf("cluster %q not found", cluster)
	}
	r := s.Req
	req, err := http.NewRequestWithContext(ctx, r.Method, "http://"+c.host, nil)
	if err != nil {
		return decision{}, err
	}
	req.URL.Path = c.prefix + r.URL.Path
	req.URL.RawQuery = r.URL.RawQuery
	req.Host = r.Host
	req.ContentLength = 0
	for k, vs := range r.Header {
		if always[k] || c.allowed.has(k) {
			req.Header[k] = vs
		}
	}
	for _, h := range c.add {
		req.Header[h.Key] = []string{h.Value}
	}
	resp, _, err := up.RoundTrip(req, &filter.Attempt{})
	if err != nil {
		return decision{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode == http.StatusOK {
		d := decision{allowed: true, header: http.Header{}}
		for k, vs := range resp.Header {
			if len(vs) == 0 {
				continue
			}
			if c.toUpstream.has(k) {
				d.upstream = append(d.upstream, filter.Header{Key: k, Value: vs[0]})
			}
			if c.toClientOK.has(k) {
				d.header[k] = vs
			}
		}
		return d, nil
	}
	d := decision{status: resp.StatusCode, header: http.Header{}, body: string(body)}
	for k, vs := range resp.Header {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection", "Date", "Server":
			continue
		}
		if c.toClient == nil || c.toClient.has(k) {
			d.header[k] = vs
		}
	}
	return d, nil
}

// grpcCheck is the gRPC protocol, over a client that dials the cluster's
// hosts through the proxy's own cluster (load balancing, circuit breaking).
type grpcCheck struct {
	authority string
	env       filter.Env
	cluster   string

	once sync.Once
	conn *grpc.ClientConn
	err  error
}

func (g *grpcCheck) client() (*grpc.ClientConn, error) {
	g.once.Do(func() {
		g.conn, g.err = grpc.NewClient("passthrough:///"+g.authority,
			grpc.WithTransportCredentials(insecureCreds()),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
				up := g.env.Upstream(g.cluster)
				if up == nil {
					return nil, fmt.Errorf("cluster %q not found", g.cluster)
				}
				c, _, err := up.Dial(ctx, &filter.Attempt{})
				return c, err
			}))
	})
	return g.conn, g.err
}
