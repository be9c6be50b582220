package cluster

import (
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// Outlier detection follows Envoy's passive health checking:
// https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/outlier
// Consecutive-error ejections happen as soon as the threshold is reached;
// un-ejection, the ejection-multiplier decay and the success-rate and
// failure-percentage checks run once per interval. The interval "timer" is
// lazy: the first pick or report after the deadline runs the sweep, so
// tests drive it with a fake Clock and nothing runs in the background.
type outlierSettings struct {
	consecutive5xx, consecutiveGateway   uint32
	enforcing5xx, enforcingGateway       uint32 // percent
	interval, baseEjection, maxEjection  time.Duration
	maxEjectionPercent                   uint32
	enforcingSuccessRate                 uint32
	srMinHosts, srRequestVolume, srStdev uint32
	fpThreshold, enforcingFailurePercent uint32
	fpMinHosts, fpRequestVolume          uint32
}

func compileOutlier(od *clusterv3.OutlierDetection) (*outlierSettings, error) {
	if od == nil {
		return nil, nil
	}
	if err := xdsfield.Check(od, "", "consecutive_5xx", "interval", "base_ejection_time", "max_ejection_percent",
		"enforcing_consecutive_5xx", "enforcing_success_rate", "success_rate_minimum_hosts",
		"success_rate_request_volume", "success_rate_stdev_factor", "consecutive_gateway_failure",
		"enforcing_consecutive_gateway_failure", "split_external_local_origin_errors",
		"consecutive_local_origin_failure", "enforcing_consecutive_local_origin_failure",
		"enforcing_local_origin_success_rate", "failure_percentage_threshold", "enforcing_failure_percentage",
		"enforcing_failure_percentage_local_origin", "failure_percentage_minimum_hosts",
		"failure_percentage_request_volume", "max_ejection_time"); err != nil {
		return nil, err
	}
	if od.GetSplitExternalLocalOriginErrors() {
		return nil, errors.New("split_external_local_origin_errors: not supported by weft-proxy")
	}
	s := &outlierSettings{
		consecutive5xx:          u32Or(od.GetConsecutive_5Xx(), 5),
		consecutiveGateway:      u32Or(od.GetConsecutiveGatewayFailure(), 5),
		enforcing5xx:            u32Or(od.GetEnforcingConsecutive_5Xx(), 100),
		enforcingGateway:        u32Or(od.GetEnforcingConsecutiveGatewayFailure(), 0),
		interval:                durOr(od.GetInterval(), 10*time.Second),
		baseEjection:            durOr(od.GetBaseEjectionTime(), 30*time.Second),
		maxEjection:             durOr(od.GetMaxEjectionTime(), 300*time.Second),
		maxEjectionPercent:      u32Or(od.GetMaxEjectionPercent(), 10),
		enforcingSuccessRate:    u32Or(od.GetEnforcingSuccessRate(), 100),
		srMinHosts:              u32Or(od.GetSuccessRateMinimumHosts(), 5),
		srRequestVolume:         u32Or(od.GetSuccessRateRequestVolume(), 100),
		srStdev:                 u32Or(od.GetSuccessRateStdevFactor(), 1900),
		fpThreshold:             u32Or(od.GetFailurePercentageThreshold(), 85),
		enforcingFailurePercent: u32Or(od.GetEnforcingFailurePercentage(), 0),
		fpMinHosts:              u32Or(od.GetFailurePercentageMinimumHosts(), 5),
		fpRequestVolume:         u32Or(od.GetFailurePercentageRequestVolume(), 50),
	}
	if s.interval <= 0 {
		return nil, errors.New("interval: must be positive")
	}
	if s.baseEjection <= 0 {
		return nil, errors.New("base_ejection_time: must be positive")
	}
	for _, p := range []uint32{s.enforcing5xx, s.enforcingGateway, s.maxEjectionPercent, s.enforcingSuccessRate,
		s.fpThreshold, s.enforcingFailurePercent} {
		if p > 100 {
			return nil, errors.New("percentages must be within [0, 100]")
		}
	}
	return s, nil
}

// hostOutlier is one host's passive health state. Counters are atomics
// updated per response; ejection state changes under detector.mu.
type hostOutlier struct {
	cons5xx, consGateway atomic.Uint32
	total, success       atomic.Uint64 // this interval
	ejectedUntil         atomic.Int64  // unix nanos; 0: not ejected
	numEjections         atomic.Uint32
}

func (o *hostOutlier) ejected() bool { return o.ejectedUntil.Load() != 0 }

type ejectReason uint8

const (
	reason5xx ejectReason = iota
	reasonGateway
	reasonSuccessRate
	reasonFailurePercent
)

func (r ejectReason) String() string {
	switch r {
	case reason5xx:
		return "consecutive_5xx"
	case reasonGateway:
		return "consecutive_gateway_failure"
	case reasonSuccessRate:
		return "success_rate"
	default:
		return "failure_percentage"
	}
}

// detector runs outlier detection for one cluster (shared across Sets).
type detector struct {
	log       *slog.Logger
	cluster   string
	cfg       *outlierSettings
	clock     Clock
	stats     *Stats
	hosts     func() []*host // current members
	gen       *atomic.Uint64 // bumped when ejection state changes
	mu        sync.Mutex
	nextSweep atomic.Int64 // unix nanos
	active    atomic.Int64 // this detector's share of ejections_active
	retired   bool         // under mu: the cluster state is gone, change nothing
}

func newDetector(log *slog.Logger, cluster string, cfg *outlierSettings, clock Clock, st *Stats, gen *atomic.Uint64,
	hosts func() []*host) *detector {
	d := &detector{log: log, cluster: cluster, cfg: cfg, clock: clock, stats: st, hosts: hosts, gen: gen}
	d.nextSweep.Store(clock.Now().Add(cfg.interval).UnixNano())
	return d
}

// report records one response status for h. Local failures (connect
// failure, reset) are reported as 503, as Envoy does when external and
// local-origin errors are not split.
func (d *detector) report(h *host, status int) {
	if d == nil {
		return
	}
	o := &h.od
	o.total.Add(1)
	if status < 500 {
		o.success.Add(1)
		o.cons5xx.Store(0)
		o.consGateway.Store(0)
		d.maybeSweep()
		return
	}
	if n := o.cons5xx.Add(1); n >= d.cfg.consecutive5xx && d.cfg.consecutive5xx > 0 {
		d.stats.OutlierEjectionsDetected5xx.Add(1)
		d.eject(h, reason5xx, d.cfg.enforcing5xx)
	}
	if status == 502 || status == 503 || status == 504 {
		if n := o.consGateway.Add(1); n >= d.cfg.consecutiveGateway && d.cfg.consecutiveGateway > 0 {
			d.stats.OutlierEjectionsDetectedGateway.Add(1)
			d.eject(h, reasonGateway, d.cfg.enforcingGateway)
		}
	} else {
		o.consGateway.Store(0)
	}
	d.maybeSweep()
}

func enforced(percent uint32) bool {
	return percent >= 100 || (percent > 0 && rand.Uint32N(100) < percent)
}

// eject removes h from load balancing for base_ejection_time × number of
// ejections (capped by max_ejection_time), honouring max_ejection_percent.
func (d *detector) eject(h *host, why ejectReason, enforcing uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	o := &h.od
	// Consecutive counters restart after a detection either way.
	switch why {
	case reason5xx:
		o.cons5xx.Store(0)
	case reasonGateway:
		o.consGateway.Store(0)
	}
	if d.retired || o.ejected() || !enforced(enforcing) {
		return
	}
	hosts := d.hosts()
	ejected := 0
	for _, x := range hosts {
		if x.od.ejected() {
			ejected++
		}
	}
	// Envoy ejects at least one host regardless of max_ejection_percent.
	if ejected > 0 && float64(ejected+1)*100 > float64(d.cfg.maxEjectionPercent)*float64(len(hosts)) {
		d.stats.OutlierEjectionsOverflow.Add(1)
		return
	}
	n := o.numEjections.Add(1)
	dur := time.Duration(n) * d.cfg.baseEjection
	if limit := max(d.cfg.maxEjection, d.cfg.baseEjection); dur > limit {
		dur = limit
	}
	o.ejectedUntil.Store(d.clock.Now().Add(dur).UnixNano())
	d.log.Info("outlier ejected", "cluster", d.cluster, "host", h.addr, "reason", why.String(), "duration", dur)
	o.cons5xx.Store(0)
	o.consGateway.Store(0)
	d.stats.OutlierEjectionsActive.Add(1)
	d.active.Add(1)
	d.stats.OutlierEjectionsEnforcedTotal.Add(1)
	switch why {
	case reason5xx:
		d.stats.OutlierEjectionsConsecutive5xx.Add(1)
	case reasonGateway:
		d.stats.OutlierEjectionsGatewayFailure.Add(1)
	case reasonSuccessRate:
		d.stats.OutlierEjectionsSuccessRate.Add(1)
	case reasonFailurePercent:
		d.stats.OutlierEjectionsFailurePercent.Add(1)
	}
	d.gen.Add(1)
}

// maybeSweep runs the interval work when its deadline has passed.
func (d *detector) maybeSweep() {
	if d == nil {
		return
	}
	now := d.clock.Now().UnixNano()
	next := d.nextSweep.Load()
	if now < next {
		return
	}
	// Keep Envoy's fixed timer cadence: the next tick is the first
	// multiple of interval after now.
	iv := int64(d.cfg.interval)
	if !d.nextSweep.CompareAndSwap(next, next+((now-next)/iv+1)*iv) {
		return
	}
	d.sweep(now)
}

func (d *detector) sweep(now int64) {
	d.mu.Lock()
	if d.retired {
		d.mu.Unlock()
		return
	}
	hosts := d.hosts()
	changed := false
	type sample struct {
		h    *host
		rate float64
	}
	var srs, fps []sample
	for _, h := range hosts {
		o := &h.od
		total, ok := o.total.Swap(0), o.success.Swap(0)
		if until := o.ejectedUntil.Load(); until != 0 {
			if now >= until {
				o.ejectedUntil.Store(0)
				d.log.Info("outlier returned", "cluster", d.cluster, "host", h.addr)
				d.stats.OutlierEjectionsActive.Add(-1)
				d.active.Add(-1)
				changed = true
			}
			continue
		}
		if n := o.numEjections.Load(); n > 0 {
			o.numEjections.Store(n - 1)
		}
		if total > 0 {
			rate := float64(ok) * 100 / float64(total)
			if total >= uint64(d.cfg.srRequestVolume) {
				srs = append(srs, sample{h, rate})
			}
			if total >= uint64(d.cfg.fpRequestVolume) {
				fps = append(fps, sample{h, rate})
			}
		}
	}
	d.mu.Unlock()
	if changed {
		d.gen.Add(1)
	}
	// Success rate: eject hosts below mean - stdev × factor/1000.
	if len(srs) > 0 && len(srs) >= int(d.cfg.srMinHosts) {
		var sum, sq float64
		for _, s := range srs {
			sum += s.rate
		}
		mean := sum / float64(len(srs))
		for _, s := range srs {
			sq += (s.rate - mean) * (s.rate - mean)
		}
		limit := mean - math.Sqrt(sq/float64(len(srs)))*float64(d.cfg.srStdev)/1000
		for _, s := range srs {
			if s.rate < limit {
				d.eject(s.h, reasonSuccessRate, d.cfg.enforcingSuccessRate)
			}
		}
	}
	// Failure percentage: eject hosts whose failure share reaches the threshold.
	if len(fps) > 0 && len(fps) >= int(d.cfg.fpMinHosts) {
		for _, s := range fps {
			if 100-s.rate >= float64(d.cfg.fpThreshold) {
				d.eject(s.h, reasonFailurePercent, d.cfg.enforcingFailurePercent)
			}
		}
	}
}

// retire removes this detector's ejections from the shared gauge when its
// cluster state goes away (stats outlive it).
func (d *detector) retire() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.retired = true
	d.stats.OutlierEjectionsActive.Add(-d.active.Swap(0))
}
