package hcm

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/rflag"
)

// echo answers with what it saw, as headers, and a body naming itself.
func echo(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		w.Header().Set("X-Seen-Path", r.URL.RequestURI())
		w.Header().Set("X-Seen-Host", r.Host)
		for _, k := range []string{"X-Request-Id", "X-Forwarded-Proto", "X-Envoy-Attempt-Count", "X-Added", "X-Removed", "Connection", "X-Envoy-Internal"} {
			w.Header().Set("X-Seen-"+k, strings.Join(r.Header.Values(k), ","))
		}
		for k, v := range r.Header {
			if strings.Contains(k, "_") {
				w.Header().Set("X-Seen-Underscore", strings.Join(v, ","))
			}
		}
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s:%s", name, b)
	})
}

func get(t *testing.T, c *http.Client, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestProxyBasics(t *testing.T) {
	be := backend(t, echo("a"))
	p := startProxy(t, proxyConfig{rds: true, clusters: []upstream{{name: "a", addrs: []string{be}}},
		routes: rc(vhost(rt("r", "/", toCluster("a"))))})
	c := client()
	resp, body := get(t, c, "http://"+p.addr+"/hello?x=1")
	if resp.StatusCode != 200 || body != "a:" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Seen-Path"); got != "/hello?x=1" {
		t.Errorf("path upstream %q", got)
	}
	if id := resp.Header.Get("X-Seen-X-Request-Id"); len(id) != 36 || id[14] != '4' {
		t.Errorf("x-request-id %q", id)
	}
	if v := resp.Header.Get("X-Seen-X-Forwarded-Proto"); v != "http" {
		t.Errorf("x-forwarded-proto %q", v)
	}
	if v := resp.Header.Get("X-Seen-X-Envoy-Attempt-Count"); v != "1" {
		t.Errorf("attempt count %q", v)
	}
	if resp.Header.Get("X-Envoy-Upstream-Service-Time") == "" || resp.Header.Get("Server") != "envoy" {
		t.Errorf("response headers %v", resp.Header)
	}
	info := p.nextInfo(t)
	if info.Status != 200 || info.Flags != 0 || info.Cluster != "a" || info.Host != be || info.RouteName != "r" ||
		info.Details != "via_upstream" || info.BytesOut != 2 || info.Path != "/hello?x=1" || info.RequestID == "" {
		t.Errorf("info %+v", info)
	}
}

func TestLocalReplies(t *testing.T) {
	be := backend(t, echo("a"))
	p := startProxy(t, proxyConfig{rds: true, clusters: []upstream{{name: "a", addrs: []string{be}}, {name: "empty"}},
		routes: rc(&routev3.VirtualHost{Name: "only", Domains: []string{"only.example"}, Routes: []*routev3.Route{
			rt("a", "/a", toCluster("a")),
			rt("missing", "/missing", toCluster("nope")),
			rt("empty", "/empty", toCluster("empty")),
			rt("direct", "/direct", &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 418,
				Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "teapot"}}}}),
			rt("redirect", "/redirect", &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
				SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true}}}),
		}})})
	c := client()
	for _, tc := range []struct {
		path, host string
		status     int
		body       string
		flag       rflag.Flags
		location   string
	}{
		{"/a", "only.example", 200, "a:", 0, ""},
		{"/a", "other.example", 404, "", rflag.NR, ""},
		{"/zzz", "only.example", 404, "", rflag.NR, ""},
		{"/missing", "only.example", 503, "", rflag.NC, ""},
		{"/empty", "only.example", 503, "no healthy upstream", rflag.UH, ""},
		{"/direct", "only.example", 418, "teapot", 0, ""},
		{"/redirect/x?q=1", "only.example", 301, "", 0, "https://only.example/redirect/x?q=1"},
	} {
		resp, body := get(t, c, "http://"+p.addr+tc.path, "host", tc.host)
		info := p.nextInfo(t)
		if resp.StatusCode != tc.status || body != tc.body || info.Flags != tc.flag || info.Status != tc.status ||
			resp.Header.Get("Location") != tc.location {
			t.Errorf("%s %s: got %d %q flags %v location %q, want %d %q %v %q", tc.host, tc.path, resp.StatusCode, body,
				info.Flags, resp.Header.Get("Location"), tc.status, tc.body, tc.flag, tc.location)
		}
	}
}

func TestRDSMissingIs404(t *testing.T) {
	p := startProxy(t, proxyConfig{rds: true, routes: rc(vhost(rt("r", "/", toCluster("a"))))})
	p.env.mu.Lock()
	delete(p.env.tables, "80")
	p.env.mu.Unlock()
	resp, _ := get(t, client(), "http://"+p.addr+"/")
	if resp.StatusCode != 404 || p.nextInfo(t).Flags != rflag.NR {
		t.Fatalf("got %d", resp.StatusCode)
	}
}

func TestRewritesAndHeaders(t *testing.T) {
	be := backend(t, echo("a"))
	route := rt("r", "/old/", toCluster("a", func(a *routev3.RouteAction) {
		a.PrefixRewrite = "/new/"
		a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "rewritten.example"}
	}))
	route.RequestHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-added", Value: "route"},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}}
	route.RequestHeadersToRemove = []string{"x-removed"}
	route.ResponseHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-resp", Value: "1"}}}
	route.ResponseHeadersToRemove = []string{"x-backend"}
	vh := vhost(route)
	vh.RequestHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-added", Value: "vhost"}}}
	p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}}, routes: rc(vh)})
	resp, _ := get(t, client(), "http://"+p.addr+"/old/thing?q=1", "x-added", "client", "x-removed", "gone")
	if got := resp.Header.Get("X-Seen-Path"); got != "/new/thing?q=1" {
		t.Errorf("path %q", got)
	}
	if got := resp.Header.Get("X-Seen-Host"); got != "rewritten.example" {
		t.Errorf("host %q", got)
	}
	// Route overwrites the client's value, then the virtual host appends.
	if got := resp.Header.Get("X-Seen-X-Added"); got != "route,vhost" {
		t.Errorf("x-added %q", got)
	}
	if got := resp.Header.Get("X-Seen-X-Removed"); got != "" {
		t.Errorf("x-removed reached upstream: %q", got)
	}
	if resp.Header.Get("X-Resp") != "1" || resp.Header.Get("X-Backend") != "" {
		t.Errorf("response headers %v", resp.Header)
	}
}

func TestNewRejects(t *testing.T) {
	ok := startProxyConfigForNew(t)
	for _, tc := range []struct {
		name   string
		mutate func(*hcmv3HCM)
		want   string
	}{
		{"tracing without telemetry", func(h *hcmv3HCM) { h.Tracing = &hcmv3HCMTracing{} }, "tracing"},
		{"router not last", func(h *hcmv3HCM) { h.HttpFilters = append(h.HttpFilters, h.HttpFilters[0]) }, "the router must be the last filter"},
		{"out of order", func(h *hcmv3HCM) {
			fault := &hcmv3HttpFilter{Name: "fault", ConfigType: &hcmv3HttpFilterTyped{TypedConfig: mustAny(t, &faultv3HTTPFault{})}}
			h.HttpFilters = []*hcmv3HttpFilter{h.HttpFilters[0], fault, h.HttpFilters[1]} // cors before fault
		}, "out of order"},
		{"no router", func(h *hcmv3HCM) { h.HttpFilters = h.HttpFilters[:1] }, "last filter must be envoy.filters.http.router"},
		{"unknown filter", func(h *hcmv3HCM) {
			h.HttpFilters = append([]*hcmv3HttpFilter{{Name: "x", ConfigType: &hcmv3HttpFilterTyped{TypedConfig: mustAny(t, &corev3.Address{})}}}, h.HttpFilters...)
		}, "not supported"},
		{"bad inline route", func(h *hcmv3HCM) {
			h.RouteSpecifier = &hcmv3HCMRouteConfig{RouteConfig: &routev3.RouteConfiguration{Vhds: &routev3.Vhds{}}}
		}, "vhds"},
	} {
		cfg := proto.Clone(ok).(*hcmv3HCM)
		tc.mutate(cfg)
		_, err := New(cfg, &testEnv{}, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := New(ok, &testEnv{}, Options{}); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
}

func startProxyConfigForNew(t *testing.T) *hcmv3HCM {
	return &hcmv3HCM{StatPrefix: "x", RouteSpecifier: &hcmv3HCMRouteConfig{RouteConfig: rc(vhost(rt("r", "/", toCluster("a"))))},
		HttpFilters: []*hcmv3HttpFilter{
			{Name: "cors", ConfigType: &hcmv3HttpFilterTyped{TypedConfig: mustAny(t, &corsv3CorsFilter{})}},
			{Name: "router", ConfigType: &hcmv3HttpFilterTyped{TypedConfig: mustAny(t, &routerv3Router{})}},
		}}
}
