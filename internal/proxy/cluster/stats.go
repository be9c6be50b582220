package cluster

import (
	"sync/atomic"
)

// Stats are a cluster's counters and gauges in Envoy's naming
// (cluster.<name>.<stat>). Fields are atomics: callers such as the router
// may add to them directly (e.g. UpstreamRqTimeout, UpstreamRqRetrySuccess).
type Stats struct {
	UpstreamRqTotal           atomic.Uint64
	UpstreamRq2xx             atomic.Uint64
	UpstreamRq3xx             atomic.Uint64
	UpstreamRq4xx             atomic.Uint64
	UpstreamRq5xx             atomic.Uint64
	UpstreamRqActive          atomic.Int64 // gauge
	UpstreamRqPendingActive   atomic.Int64 // gauge
	UpstreamRqPendingTotal    atomic.Uint64
	UpstreamRqPendingOverflow atomic.Uint64
	UpstreamRqRetry           atomic.Uint64
	UpstreamRqRetrySuccess    atomic.Uint64
	UpstreamRqRetryOverflow   atomic.Uint64
	UpstreamRqTimeout         atomic.Uint64
	UpstreamRqPerTryTimeout   atomic.Uint64
	UpstreamCxTotal           atomic.Uint64
	UpstreamCxActive          atomic.Int64 // gauge
	UpstreamCxConnectFail     atomic.Uint64
	UpstreamCxConnectTimeout  atomic.Uint64
	UpstreamCxOverflow        atomic.Uint64
	UpstreamCxNoneHealthy     atomic.Uint64
	UpstreamCxDestroy         atomic.Uint64
	UpstreamCxIdleClosed      atomic.Uint64 // pooled connections found closed by the upstream when taken
	UpstreamRqRemoteReset     atomic.Uint64 // upstream_cx_destroy_remote_with_active_rq in Envoy; kept simple
	RqActiveRetries           atomic.Int64  // gauge: circuit_breakers.default.rq_retry_open source

	OutlierEjectionsActive          atomic.Int64 // gauge
	OutlierEjectionsEnforcedTotal   atomic.Uint64
	OutlierEjectionsOverflow        atomic.Uint64
	OutlierEjectionsConsecutive5xx  atomic.Uint64 // ejections_enforced_consecutive_5xx
	OutlierEjectionsGatewayFailure  atomic.Uint64 // ejections_enforced_consecutive_gateway_failure
	OutlierEjectionsSuccessRate     atomic.Uint64 // ejections_enforced_success_rate
	OutlierEjectionsFailurePercent  atomic.Uint64 // ejections_enforced_failure_percentage
	OutlierEjectionsDetected5xx     atomic.Uint64 // ejections_detected_consecutive_5xx
	OutlierEjectionsDetectedGateway atomic.Uint64 // ejections_detected_consecutive_gateway_failure
}

// Each calls fn for every stat with its Envoy name (without the
// "cluster.<name>." prefix), in a stable order.
func (s *Stats) Each(fn func(name string, value int64)) {
	u := func(n string, v *atomic.Uint64) { fn(n, int64(v.Load())) }
	g := func(n string, v *atomic.Int64) { fn(n, v.Load()) }
	u("upstream_rq_total", &s.UpstreamRqTotal)
	u("upstream_rq_2xx", &s.UpstreamRq2xx)
	u("upstream_rq_3xx", &s.UpstreamRq3xx)
	u("upstream_rq_4xx", &s.UpstreamRq4xx)
	u("upstream_rq_5xx", &s.UpstreamRq5xx)
	g("upstream_rq_active", &s.UpstreamRqActive)
	g("upstream_rq_pending_active", &s.UpstreamRqPendingActive)
	u("upstream_rq_pending_total", &s.UpstreamRqPendingTotal)
	u("upstream_rq_pending_overflow", &s.UpstreamRqPendingOverflow)
	u("upstream_rq_retry", &s.UpstreamRqRetry)
	u("upstream_rq_retry_success", &s.UpstreamRqRetrySuccess)
	u("upstream_rq_retry_overflow", &s.UpstreamRqRetryOverflow)
	u("upstream_rq_timeout", &s.UpstreamRqTimeout)
	u("upstream_rq_per_try_timeout", &s.UpstreamRqPerTryTimeout)
	u("upstream_cx_total", &s.UpstreamCxTotal)
	g("upstream_cx_active", &s.UpstreamCxActive)
	u("upstream_cx_connect_fail", &s.UpstreamCxConnectFail)
	u("upstream_cx_connect_timeout", &s.UpstreamCxConnectTimeout)
	u("upstream_cx_overflow", &s.UpstreamCxOverflow)
	u("upstream_cx_none_healthy", &s.UpstreamCxNoneHealthy)
	u("upstream_cx_destroy", &s.UpstreamCxDestroy)
	u("upstream_cx_destroy_remote", &s.UpstreamCxIdleClosed)
	u("upstream_rq_rx_reset", &s.UpstreamRqRemoteReset)
	g("outlier_detection.ejections_active", &s.OutlierEjectionsActive)
	u("outlier_detection.ejections_enforced_total", &s.OutlierEjectionsEnforcedTotal)
	u("outlier_detection.ejections_overflow", &s.OutlierEjectionsOverflow)
	u("outlier_detection.ejections_enforced_consecutive_5xx", &s.OutlierEjectionsConsecutive5xx)
	u("outlier_detection.ejections_enforced_consecutive_gateway_failure", &s.OutlierEjectionsGatewayFailure)
	u("outlier_detection.ejections_enforced_success_rate", &s.OutlierEjectionsSuccessRate)
	u("outlier_detection.ejections_enforced_failure_percentage", &s.OutlierEjectionsFailurePercent)
	u("outlier_detection.ejections_detected_consecutive_5xx", &s.OutlierEjectionsDetected5xx)
	u("outlier_detection.ejections_detected_consecutive_gateway_failure", &s.OutlierEjectionsDetectedGateway)
}

// Get returns one stat by its Envoy name (0 when unknown); for tests and
// the admin endpoint.
func (s *Stats) Get(name string) int64 {
	var out int64
	s.Each(func(n string, v int64) {
		if n == name {
			out = v
		}
	})
	return out
}

func (s *Stats) countStatus(code int) {
	switch {
	case code >= 500:
		s.UpstreamRq5xx.Add(1)
	case code >= 400:
		s.UpstreamRq4xx.Add(1)
	case code >= 300:
		s.UpstreamRq3xx.Add(1)
	case code >= 200:
		s.UpstreamRq2xx.Add(1)
	}
}
