package hcm

import (
	"context"
	"net"
	"net/http"

	"github.com/weftmesh/weft/internal/proxy/cluster"
	"github.com/weftmesh/weft/internal/proxy/filter"
)

// upstreams adapts Env's clusters to the router's filter.Upstream.
type upstreams struct{ env Env }

func (u *upstreams) Upstream(name string) filter.Upstream {
	c := u.env.Cluster(name)
	if c == nil {
		return nil
	}
	return clusterUpstream{c}
}

type clusterUpstream struct{ c *cluster.Cluster }

func options(o *filter.Attempt) *cluster.RequestOptions {
	return &cluster.RequestOptions{HashKey: o.HashKey, HasHash: o.HasHash, Retry: o.Retry,
		Exclude: o.Exclude, OriginalDst: o.OriginalDst, Downstream: o.Protocol}
}

func (u clusterUpstream) RoundTrip(req *http.Request, o *filter.Attempt) (*http.Response, string, error) {
	resp, att, err := u.c.RoundTrip(req, options(o))
	if att != nil {
		return resp, att.Host, err
	}
	return resp, "", err
}

func (u clusterUpstream) Dial(ctx context.Context, o *filter.Attempt) (net.Conn, string, error) {
	c, att, err := u.c.Dial(ctx, options(o))
	if att != nil {
		return c, att.Host, err
	}
	return c, "", err
}
