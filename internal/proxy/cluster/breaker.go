package cluster

import "sync/atomic"

// Circuit breakers, Envoy's default-priority thresholds
// (arch_overview/upstream/circuit_breaking), kept as atomic gauges in
// Stats so that no lock is taken per request:
//   - max_connections: UpstreamCxActive, checked when a pool opens a
//     connection (a host picked by the balancer may always hold one) and by
//     Dial;
//   - max_pending_requests: UpstreamRqPendingActive, requests waiting for
//     a pool connection;
//   - max_requests: UpstreamRqActive, requests in flight;
//   - max_retries: RqActiveRetries, retries in flight.
// Overflow answers 503 with flag UO (see errors.go).

// reserveConn takes a max_connections slot for a new connection.
func (sh *shared) reserveConn() bool {
	for {
		n := sh.stats.UpstreamCxActive.Load()
		if n >= sh.cfg.maxConnections {
			return false
		}
		if sh.stats.UpstreamCxActive.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// tryAcquire increments g when it stays within limit.
func tryAcquire(g *atomic.Int64, limit int64) bool {
	if g.Add(1) > limit {
		g.Add(-1)
		return false
	}
	return true
}

// reserveConnOr reserves a connection slot; force skips the limit check.
func (sh *shared) reserveConnOr(force bool) bool {
	if force {
		sh.stats.UpstreamCxActive.Add(1)
		return true
	}
	return sh.reserveConn()
}
