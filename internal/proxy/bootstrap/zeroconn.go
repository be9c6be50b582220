package bootstrap

import "time"

// activeCheckEvery is how often a drain with ExitOnZeroActive counts the
// open downstream connections (Istio's agent checks every second).
const activeCheckEvery = time.Second

// drainUntilIdle is the drain of Istio's EXIT_ON_ZERO_ACTIVE_CONNECTIONS:
// MinDrainDuration first, then idle connections close and the proxy stops
// as soon as no downstream connection is left. As in Istio there is no
// upper bound of its own: the pod's termination grace period (SIGKILL),
// or a second signal, ends a drain that never empties.
func (p *Proxy) drainUntilIdle() {
	p.log.Info("draining until no connection is left", "minimum", p.cfg.MinDrainDuration)
	t := time.NewTimer(p.cfg.MinDrainDuration)
	select {
	case <-t.C:
	case <-p.hardStop:
		t.Stop()
		return
	}
	p.Runtime.Listeners().CloseIdle()
	tick := time.NewTicker(activeCheckEvery)
	defer tick.Stop()
	for {
		n := p.activeDownstream()
		if n == 0 {
			p.log.Info("no downstream connection left; stopping")
			return
		}
		p.log.Info("downstream connections still open", "active", n)
		select {
		case <-tick.C:
		case <-p.hardStop:
			return
		}
	}
}

// activeDownstream counts open downstream connections on every listener
// (Envoy's listener.*.downstream_cx_active, which Istio's agent sums).
func (p *Proxy) activeDownstream() int64 {
	var n int64
	for _, s := range p.Runtime.Listeners().Stats() {
		n += s.DownstreamCxActive
	}
	return n
}
