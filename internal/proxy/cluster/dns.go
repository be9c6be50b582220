package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// STRICT_DNS: every address each endpoint name resolves to is a host.
// Resolution runs at start and again after dns_refresh_rate; the refresh is
// triggered by traffic (the first pick after the deadline, using the
// injected Clock) and runs in the background while the previous hosts keep
// serving. A failed resolution keeps the previous hosts.

type dnsTarget struct {
	name     string
	port     uint16
	weight   uint32
	healthy  bool
	priority uint32
	locality string
	lweight  uint32
	tls      *tlsSettings
}

type dnsState struct {
	sh        *shared
	targets   []dnsTarget
	ready     chan struct{}
	readyOnce sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
	busy      atomic.Bool
	next      atomic.Int64 // unix nanos of the next refresh
	c         *Cluster
}

func newDNS(sh *shared, cla *endpointv3.ClusterLoadAssignment) (*dnsState, error) {
	if err := xdsfield.Check(cla, "load_assignment.", "cluster_name", "endpoints", "policy"); err != nil {
		return nil, err
	}
	d := &dnsState{sh: sh, ready: make(chan struct{})}
	for i, lle := range cla.GetEndpoints() {
		path := fmt.Sprintf("load_assignment.endpoints[%d].", i)
		if err := xdsfield.Check(lle, path, "locality", "lb_endpoints", "load_balancing_weight", "priority", "metadata"); err != nil {
			return nil, err
		}
		loc := lle.GetLocality()
		for j, lbe := range lle.GetLbEndpoints() {
			epath := fmt.Sprintf("%slb_endpoints[%d].", path, j)
			if err := xdsfield.Check(lbe, epath, "endpoint", "health_status", "metadata", "load_balancing_weight"); err != nil {
				return nil, err
			}
			if err := xdsfield.Check(lbe.GetEndpoint(), epath+"endpoint.", "address", "hostname", "health_check_config"); err != nil {
				return nil, err
			}
			addr, err := socketAddr(lbe.GetEndpoint().GetAddress(), false)
			if err != nil {
				return nil, fmt.Errorf("%sendpoint.address.%w", epath, err)
			}
			host, port, _ := net.SplitHostPort(addr)
			p, _ := strconv.Atoi(port)
			hs := lbe.GetHealthStatus()
			d.targets = append(d.targets, dnsTarget{
				name: host, port: uint16(p), weight: max(u32Or(lbe.GetLoadBalancingWeight(), 1), 1),
				healthy:  hs == corev3.HealthStatus_UNKNOWN || hs == corev3.HealthStatus_HEALTHY || hs == corev3.HealthStatus_DEGRADED,
				priority: lle.GetPriority(), locality: loc.GetRegion() + "/" + loc.GetZone() + "/" + loc.GetSubZone(),
				lweight: u32Or(lle.GetLoadBalancingWeight(), 0), tls: sh.cfg.socketFor(lbe.GetMetadata()),
			})
		}
	}
	if len(d.targets) == 0 {
		d.markReady()
	}
	return d, nil
}

func (d *dnsState) markReady() { d.readyOnce.Do(func() { close(d.ready) }) }

func (d *dnsState) start(c *Cluster) {
	d.c = c
	d.ctx, d.cancel = context.WithCancel(d.sh.ctx)
	d.busy.Store(true)
	go d.resolve()
}

func (d *dnsState) stop() {
	if d.cancel != nil {
		d.cancel()
	}
}

// maybeRefresh starts a background re-resolution when it is due.
func (d *dnsState) maybeRefresh() {
	if d.sh.opts.Clock.Now().UnixNano() < d.next.Load() || !d.busy.CompareAndSwap(false, true) {
		return
	}
	go d.resolve()
}

// wait blocks until the first resolution finished (or ctx ends).
func (d *dnsState) wait(ctx context.Context) {
	select {
	case <-d.ready:
	case <-ctx.Done():
	}
}

func (d *dnsState) resolve() {
	defer d.busy.Store(false)
	sh := d.sh
	ctx, cancel := context.WithTimeout(d.ctx, max(sh.cfg.connectTimeout, 5*time.Second))
	defer cancel()
	var ms []member
	var err error
	for _, t := range d.targets {
		var addrs []string
		addrs, err = lookup(ctx, sh, t.name)
		if err != nil {
			break
		}
		for _, a := range addrs {
			ip, perr := netip.ParseAddr(a)
			if perr != nil {
				continue
			}
			ms = append(ms, member{h: &host{addr: netip.AddrPortFrom(ip.Unmap(), t.port).String(), tls: t.tls},
				weight: t.weight, healthy: t.healthy, priority: t.priority, locality: t.locality, lweight: t.lweight})
		}
	}
	d.next.Store(sh.opts.Clock.Now().Add(sh.cfg.dnsRefresh).UnixNano())
	if err != nil {
		sh.opts.Log.Warn("dns resolution failed; keeping previous hosts", "cluster", sh.name, "error", err)
		d.markReady()
		return
	}
	c := d.c
	c.mu.Lock()
	if d.ctx.Err() != nil {
		c.mu.Unlock()
		return
	}
	old := c.cur.Load().members
	reuse := map[string]*host{}
	for _, m := range old {
		reuse[m.h.addr] = m.h
	}
	for i := range ms {
		h := reuse[ms[i].h.addr]
		if h == nil || h.tls != ms[i].h.tls {
			h = newHost(sh, ms[i].h.addr, ms[i].h.tls, false)
			reuse[h.addr] = h
		}
		h.acquire()
		ms[i].h = h
	}
	c.setMembersLocked(ms)
	c.mu.Unlock()
	for _, m := range old {
		m.h.release()
	}
	d.markReady()
}

// lookup resolves name to IP strings, honouring V4_ONLY.
func lookup(ctx context.Context, sh *shared, name string) ([]string, error) {
	if _, err := netip.ParseAddr(name); err == nil {
		return []string{name}, nil
	}
	addrs, err := sh.opts.Resolver.LookupHost(ctx, name)
	if err != nil {
		return nil, err
	}
	if sh.cfg.v4Only {
		out := addrs[:0:0]
		for _, a := range addrs {
			if ip, err := netip.ParseAddr(a); err == nil && ip.Unmap().Is4() {
				out = append(out, a)
			}
		}
		addrs = out
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no addresses for %q", name)
	}
	return addrs, nil
}

// resolveOne resolves a host:port to ip:port with the first address
// (LOGICAL_DNS semantics; also ORIGINAL_DST by name).
func (sh *shared) resolveOne(ctx context.Context, hostport string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", err
	}
	addrs, err := lookup(ctx, sh, host)
	if err != nil {
		return "", err
	}
	if len(addrs) == 0 {
		return "", errors.New("no addresses")
	}
	return net.JoinHostPort(addrs[0], port), nil
}
