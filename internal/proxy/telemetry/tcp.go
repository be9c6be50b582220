package telemetry

import (
	"sync/atomic"
	"time"

	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/tcp"
)

// TCP builds the tcp.Observer for one tcp_proxy config. Pass it as
// tcp.Options.Observe.
func (t *Telemetry) TCP(cfg *tcpv3.TcpProxy) (tcp.Observer, error) {
	logs, err := t.compileAccessLogs(cfg.GetAccessLog(), "tcp_proxy")
	if err != nil {
		return nil, err
	}
	dest := false
	if !t.router {
		dest = inboundName(cfg.GetStatPrefix()) || inboundName(cfg.GetCluster())
	}
	return &tcpObserver{t: t, dest: dest, logs: logs}, nil
}

type tcpObserver struct {
	t    *Telemetry
	dest bool
	logs []*accessLogger
}

var _ tcp.Observer = (*tcpObserver)(nil)

// tcpConn is an open connection's reporting state.
type tcpConn struct {
	c      *tcp.Conn
	series *tcpSeries
	rx, tx atomic.Int64 // bytes already counted
}

// report adds the bytes moved since the last report to s.
func (tc *tcpConn) report(s *tcpSeries) {
	add := func(cur int64, done *atomic.Int64, to *atomic.Uint64) {
		for {
			old := done.Load()
			if cur <= old {
				return
			}
			if done.CompareAndSwap(old, cur) {
				to.Add(uint64(cur - old))
				return
			}
		}
	}
	add(tc.c.Received.Load(), &tc.rx, &s.receivedBytes)
	add(tc.c.Sent.Load(), &tc.tx, &s.sentBytes)
}

func (o *tcpObserver) Open(c *tcp.Conn) {
	if o.t.off {
		return
	}
	s := o.t.metrics.tcpSeries(o.dest, c.Downstream, c.Cluster, 0)
	s.opened.Add(1)
	tc := &tcpConn{c: c, series: s}
	c.State = tc
	o.t.conns.Store(tc, struct{}{})
}

func (o *tcpObserver) Close(c *tcp.Conn) {
	if tc, ok := c.State.(*tcpConn); ok && !o.t.off {
		o.t.conns.Delete(tc)
		// Flags (a failed connect) are known only now; Istio's TCP series
		// carry them, so a failed connection closes in a flagged series.
		s := tc.series
		if c.Flags != 0 {
			s = o.t.metrics.tcpSeries(o.dest, c.Downstream, c.Cluster, c.Flags)
		}
		tc.report(s)
		s.closed.Add(1)
	}
	o.logConn(c)
}

// Refused logs a connection a filter in front of tcp_proxy denied.
func (o *tcpObserver) Refused(c *tcp.Conn) { o.logConn(c) }

func (o *tcpObserver) logConn(c *tcp.Conn) {
	if len(o.logs) == 0 {
		return
	}
	info := filter.Info{Start: c.Start, Duration: c.Duration, Flags: c.Flags, BytesIn: c.Received.Load(),
		BytesOut: c.Sent.Load(), Cluster: c.Cluster, Host: c.Host, Downstream: c.Downstream}
	e := Entry{Info: &info, TCP: true, UpstreamLocal: c.LocalAddr, TerminationDetails: c.TerminationDetails}
	for _, l := range o.logs {
		l.log(&e)
	}
}

// reportTCP adds open connections' bytes so far to their series, as
// Istio does every tcpReportingDuration for long-lived connections.
func (t *Telemetry) reportTCP() {
	t.conns.Range(func(k, _ any) bool {
		tc := k.(*tcpConn)
		tc.report(tc.series)
		return true
	})
}

// reportLoop runs reportTCP every interval until Close.
func (t *Telemetry) reportLoop(every time.Duration) {
	defer close(t.reportDone)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.reportTCP()
		case <-t.stopReport:
			return
		}
	}
}
