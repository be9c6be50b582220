// Package cluster is weft-proxy's upstream side: it compiles Envoy CDS and
// EDS resources (plus SDS secrets for upstream TLS) into an immutable Set of
// clusters, and each Cluster picks a host (load balancing, health, outlier
// detection), enforces circuit breakers and sends the request or opens the
// TCP connection over a per-host connection pool.
//
// Concurrency: a Set and its Clusters are safe for concurrent use; the hot
// path reads immutable compiled state and atomic counters. Build is called
// by one goroutine at a time (the xDS update loop).
package cluster

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/proxy/downstream"
)

// Resolver resolves host names for STRICT_DNS, LOGICAL_DNS and
// ORIGINAL_DST-by-name clusters. *net.Resolver implements it.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Clock is the time source for outlier detection and DNS refresh, injected
// so tests can move time without sleeping.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Options configure Build. The zero value works.
type Options struct {
	Log      *slog.Logger
	Resolver Resolver // nil: net.DefaultResolver
	Clock    Clock    // nil: wall clock
	// Dialer opens upstream TCP connections; nil uses a net.Dialer with the
	// cluster's connect_timeout.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (o *Options) withDefaults() Options {
	out := *o
	if out.Log == nil {
		out.Log = slog.New(slog.DiscardHandler)
	}
	if out.Resolver == nil {
		out.Resolver = net.DefaultResolver
	}
	if out.Clock == nil {
		out.Clock = realClock{}
	}
	if out.Dialer == nil {
		out.Dialer = (&net.Dialer{}).DialContext
	}
	return out
}

// RequestOptions carry what the caller (router, TCP proxy) knows about one
// attempt. A nil *RequestOptions is the same as the zero value.
type RequestOptions struct {
	HashKey uint64 // consistent-hash key (RING_HASH, MAGLEV) when HasHash
	HasHash bool
	// Retry marks the attempt as a retry: it counts upstream_rq_retry and
	// against the max_retries breaker.
	Retry bool
	// Exclude lists hosts (ip:port) already tried, for the previous_hosts
	// retry predicate. The balancer avoids them when another host exists.
	Exclude []string
	// OriginalDst is the destination for ORIGINAL_DST clusters: ip:port, or
	// host:port (resolved; an extension of Envoy for explicit mode), or the
	// value of the original_dst_lb_config http_header_name header.
	OriginalDst string
	// Downstream is the downstream HTTP protocol, used when the cluster has
	// use_downstream_protocol_config.
	Downstream downstream.Protocol
}

// Attempt describes where an attempt went, for logs and retries.
type Attempt struct {
	// Host is the upstream ip:port (for name-based hosts, the address the
	// connection went to; before a connection exists, the name).
	Host      string
	LocalAddr string // local address of the upstream connection, if one was used
}

// Set is an immutable collection of compiled clusters.
type Set struct {
	clusters map[string]*Cluster
	closed   atomic.Bool
}

// Get returns the named cluster, or nil when unknown (the router answers 503
// NC).
func (s *Set) Get(name string) *Cluster {
	if s == nil {
		return nil
	}
	return s.clusters[name]
}

// Names returns the cluster names, sorted.
func (s *Set) Names() []string {
	if s == nil {
		return nil
	}
	return sortedKeys(s.clusters)
}

// Close releases what this Set holds that no newer Set carried over
// (connection pools of removed or changed clusters and hosts). Idempotent.
func (s *Set) Close() {
	if s == nil || !s.closed.CompareAndSwap(false, true) {
		return
	}
	for _, c := range s.clusters {
		c.release()
	}
}

// Name is the cluster name, e.g. outbound|9080||reviews.default.svc.cluster.local.
func (c *Cluster) Name() string { return c.name }

// Stats returns the cluster's counters. Like Envoy's stats store, they
// persist across updates of the cluster with the same name; the gauges
// (active connections and requests) then count the draining old pools too,
// and so do the circuit breakers built on them.
func (c *Cluster) Stats() *Stats { return c.sh.stats }

// OriginalDstHeader reports, for ORIGINAL_DST clusters with
// original_dst_lb_config.use_http_header, the request header whose value
// (host:port) the caller passes as RequestOptions.OriginalDst instead of
// the connection's original destination.
func (c *Cluster) OriginalDstHeader() (name string, ok bool) {
	cfg := c.sh.cfg
	if cfg.disc != discOriginalDst || !cfg.origUseHeader {
		return "", false
	}
	return cfg.origHeader, true
}
