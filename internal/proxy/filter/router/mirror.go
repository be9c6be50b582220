package router

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/weftmesh/weft/internal/proxy/filter"
)

// mirror sends fire-and-forget copies of the request to the route's mirror
// clusters. It never blocks or changes the main request: the copy has its
// own header map and body reader, and its response is discarded.
func (rt *Router) mirror(s *filter.Stream, out *http.Request, body []byte, timeout time.Duration) {
	if timeout <= 0 {
		timeout = rt.mirrorTimeout
	}
	for i := range s.Route.Action.Mirrors {
		m := &s.Route.Action.Mirrors[i]
		if !m.Hit() {
			continue
		}
		up := s.Env.Upstream(m.Cluster)
		if up == nil {
			continue
		}
		host := out.Host
		switch {
		case m.HostRewrite != "":
			host = m.HostRewrite
		case !m.NoShadowSuffix:
			host = shadowHost(host)
		}
		u := *out.URL
		u.Host = host
		cp := &http.Request{Method: out.Method, URL: &u, Proto: out.Proto, ProtoMajor: out.ProtoMajor,
			ProtoMinor: out.ProtoMinor, Header: out.Header.Clone(), Host: host, Body: http.NoBody}
		if len(body) > 0 {
			cp.Body, cp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		}
		go func(up filter.Upstream, cp *http.Request, name string) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			resp, _, err := up.RoundTrip(cp.WithContext(ctx), &filter.Attempt{})
			if err != nil {
				rt.log.Debug("mirror request failed", "cluster", name, "err", err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}(up, cp, m.Cluster)
	}
}

// shadowHost appends "-shadow" to the host, before any port, as Envoy does
// (reviews:9080 → reviews-shadow:9080).
func shadowHost(h string) string {
	if host, port, err := net.SplitHostPort(h); err == nil {
		return net.JoinHostPort(host+"-shadow", port)
	}
	return h + "-shadow"
}
