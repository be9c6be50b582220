package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// shared is the per-cluster state that survives rebuilds while the Cluster
// resource and the secrets it uses are unchanged: counters, breakers,
// outlier detection, dynamic hosts.
type shared struct {
	name    string
	src     *clusterv3.Cluster
	secrets map[string]*tlsv3.Secret // the secrets compile saw, by name referenced
	cfg     *settings
	opts    Options
	// stats persist across updates of the same cluster name (Envoy keeps
	// stats by name in its store): a changed cluster inherits them.
	stats  *Stats
	refs   atomic.Int32
	ctx    context.Context // cancelled when the last Cluster using it is released
	cancel context.CancelFunc

	healthGen atomic.Uint64 // bumped when a host's ejection state changes
	od        *detector
	// live are the Clusters (of any Set) over this state; the union of
	// their hosts is outlier detection's population, so that an ejected
	// host is swept (and returns) while any Set still uses it.
	liveMu sync.Mutex
	live   map[*Cluster]struct{}

	dynMu   sync.Mutex
	dyn     map[string]*host                 // ORIGINAL_DST hosts created on demand, by destination
	dynSnap atomic.Pointer[map[string]*host] // read-only copy for lock-free lookups
}

// member is a host as listed by the current assignment.
type member struct {
	h        *host
	weight   uint32
	healthy  bool // EDS health_status allows traffic
	priority uint32
	locality string
	lweight  uint32 // locality weight
}

// view is the load-balancing state for one membership and health state.
type view struct {
	members []member
	gen     uint64
	pick    picker // nil: no host at all
	panic   bool
}

// Cluster is one compiled cluster. Safe for concurrent use.
type Cluster struct {
	name string
	sh   *shared
	cla  *endpointv3.ClusterLoadAssignment
	refs atomic.Int32
	cur  atomic.Pointer[view]
	mu   sync.Mutex // serializes view rebuilds (rare)
	dns  *dnsState  // STRICT_DNS only
	// overprov is the assignment's overprovisioning factor in percent.
	overprov uint32
	// claRaw is an EDS cluster's assignment as received (cla is nil then):
	// decoded it takes ten times the memory (1,000 services' assignments
	// 2.1 MB against 0.21).
	claRaw []byte
}

// Build compiles CDS + EDS (+ SDS secrets) into a new Set. prev may be nil.
// Clusters equal to prev's keep their pools, breaker counters and outlier
// state; a cluster whose only change is its endpoints keeps all of that
// for the hosts that remain. On error nothing changes and the error names
// the cluster and field. After swapping in the new Set, the caller closes
// prev. Build keeps references to its inputs: callers must not mutate them
// afterwards (xDS clients decode fresh messages per update).
func Build(prev *Set, clusters []*clusterv3.Cluster, assignments map[string]*endpointv3.ClusterLoadAssignment,
	secrets map[string]*tlsv3.Secret, opts Options) (*Set, error) {
	enc := make(map[string][]byte, len(assignments))
	for k, cla := range assignments {
		b, err := proto.Marshal(cla)
		if err != nil {
			return nil, fmt.Errorf("endpoints %q: %w", k, err)
		}
		enc[k] = b
	}
	return BuildEncoded(prev, clusters, enc, secrets, opts)
}

// BuildEncoded is Build with the EDS assignments as received (protobuf
// wire bytes, by cluster or service name): an assignment is decoded only
// when it differs from the one its cluster was built from, and the Set
// keeps the bytes, not the decoded message.
func BuildEncoded(prev *Set, clusters []*clusterv3.Cluster, assignments map[string][]byte,
	secrets map[string]*tlsv3.Secret, opts Options) (*Set, error) {
	o := opts.withDefaults()
	s := &Set{clusters: make(map[string]*Cluster, len(clusters))}
	fail := func(err error) (*Set, error) {
		for _, c := range s.clusters {
			c.release()
		}
		return nil, err
	}
	for i, pc := range clusters {
		if pc == nil || pc.GetName() == "" {
			return fail(fmt.Errorf("cluster[%d]: name: required", i))
		}
		name := pc.GetName()
		if _, dup := s.clusters[name]; dup {
			return fail(fmt.Errorf("cluster %q: name: duplicate", name))
		}
		var c *Cluster
		var err error
		if pc.GetType() == clusterv3.Cluster_EDS {
			key := name
			if sn := pc.GetEdsClusterConfig().GetServiceName(); sn != "" {
				key = sn
			}
			c, err = buildEDSCluster(prev.Get(name), pc, assignments[key], secrets, o)
		} else {
			c, err = buildCluster(prev.Get(name), pc, pc.GetLoadAssignment(), secrets, o)
		}
		if err != nil {
			return fail(fmt.Errorf("cluster %q: %w", name, err))
		}
		s.clusters[name] = c
	}
	return s, nil
}

func buildCluster(old *Cluster, pc *clusterv3.Cluster, cla *endpointv3.ClusterLoadAssignment,
	secrets map[string]*tlsv3.Secret, o Options) (*Cluster, error) {
	if old != nil && old.sh.sameConfig(pc, secrets) {
		if proto.Equal(old.cla, cla) {
			old.refs.Add(1)
			return old, nil
		}
		return newCluster(old.sh, old, cla)
	}
	cfg, err := compile(pc, secrets)
	if err != nil {
		return nil, err
	}
	var st *Stats
	if old != nil {
		st = old.sh.stats
	}
	sh := newShared(pc, cfg, secrets, o, st)
	c, err := newCluster(sh, nil, cla)
	if err != nil {
		sh.cancel()
		return nil, err
	}
	return c, nil
}

// buildEDSCluster is buildCluster for an EDS cluster, whose assignment
// comes encoded: equal bytes are the same assignment; different bytes are
// decoded and compared, since an encoder need not be deterministic (map
// fields), so an unchanged assignment never rebuilds the cluster.
func buildEDSCluster(old *Cluster, pc *clusterv3.Cluster, raw []byte,
	secrets map[string]*tlsv3.Secret, o Options) (*Cluster, error) {
	same := old != nil && old.sh.sameConfig(pc, secrets)
	if same && sameAssignment(old.claRaw, raw) {
		old.refs.Add(1)
		return old, nil
	}
	var cla *endpointv3.ClusterLoadAssignment
	if raw != nil {
		cla = &endpointv3.ClusterLoadAssignment{}
		if err := proto.Unmarshal(raw, cla); err != nil {
			return nil, fmt.Errorf("endpoints: %w", err)
		}
	}
	if same {
		c, err := newCluster(old.sh, old, cla)
		if c != nil {
			c.cla, c.claRaw = nil, raw
		}
		return c, err
	}
	// A changed cluster: compiled afresh, with old's stats.
	c, err := buildCluster(old, pc, cla, secrets, o)
	if c != nil {
		c.cla, c.claRaw = nil, raw
	}
	return c, err
}

// sameAssignment reports whether two encoded assignments are the same
// message (nil: none).
func sameAssignment(a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if bytes.Equal(a, b) {
		return true
	}
	x, y := &endpointv3.ClusterLoadAssignment{}, &endpointv3.ClusterLoadAssignment{}
	return proto.Unmarshal(a, x) == nil && proto.Unmarshal(b, y) == nil && proto.Equal(x, y)
}

func newShared(pc *clusterv3.Cluster, cfg *settings, secrets map[string]*tlsv3.Secret, o Options, st *Stats) *shared {
	if st == nil {
		st = &Stats{}
	}
	sh := &shared{stats: st, name: pc.GetName(), src: pc, cfg: cfg, opts: o, dyn: map[string]*host{}, live: map[*Cluster]struct{}{}}
	sh.secrets = usedSecrets(pc, secrets)
	sh.ctx, sh.cancel = context.WithCancel(context.Background())
	// ORIGINAL_DST hosts come and go per destination: no outlier detection.
	if cfg.outlier != nil && cfg.disc != discOriginalDst {
		sh.od = newDetector(o.Log, sh.name, cfg.outlier, o.Clock, sh.stats, &sh.healthGen, sh.hosts)
	}
	return sh
}

// sameConfig reports whether pc and the secrets it references equal what
// sh was compiled from.
func (sh *shared) sameConfig(pc *clusterv3.Cluster, secrets map[string]*tlsv3.Secret) bool {
	if !proto.Equal(sh.src, pc) {
		return false
	}
	used := usedSecrets(pc, secrets)
	if len(used) != len(sh.secrets) {
		return false
	}
	for k, v := range used {
		if w, ok := sh.secrets[k]; !ok || !proto.Equal(v, w) {
			return false
		}
	}
	return true
}

// usedSecrets picks the secrets named anywhere in the cluster's transport
// sockets (a nil value records that a referenced secret is absent), so a
// change to one of them rebuilds the cluster.
func usedSecrets(pc *clusterv3.Cluster, secrets map[string]*tlsv3.Secret) map[string]*tlsv3.Secret {
	out := map[string]*tlsv3.Secret{}
	add := func(ref *tlsv3.SdsSecretConfig) {
		if ref != nil {
			out[ref.GetName()] = secrets[ref.GetName()]
		}
	}
	for _, ts := range socketsOf(pc) {
		var utc tlsv3.UpstreamTlsContext
		if ts.GetName() != tlsSocketName || ts.GetTypedConfig().UnmarshalTo(&utc) != nil {
			continue
		}
		ctc := utc.GetCommonTlsContext()
		for _, r := range ctc.GetTlsCertificateSdsSecretConfigs() {
			add(r)
		}
		add(ctc.GetValidationContextSdsSecretConfig())
		add(ctc.GetCombinedValidationContext().GetValidationContextSdsSecretConfig())
	}
	return out
}

func socketsOf(pc *clusterv3.Cluster) []*corev3.TransportSocket {
	var out []*corev3.TransportSocket
	if pc.GetTransportSocket() != nil {
		out = append(out, pc.GetTransportSocket())
	}
	for _, m := range pc.GetTransportSocketMatches() {
		out = append(out, m.GetTransportSocket())
	}
	return out
}

// newCluster builds a Cluster over sh from an assignment, reusing hosts of
// old (same sh) by address.
func newCluster(sh *shared, old *Cluster, cla *endpointv3.ClusterLoadAssignment) (*Cluster, error) {
	c := &Cluster{name: sh.name, sh: sh, cla: cla, overprov: u32Or(cla.GetPolicy().GetOverprovisioningFactor(), 140)}
	var members []member
	switch sh.cfg.disc {
	case discStatic, discEDS:
		var err error
		if members, err = sh.membersFrom(cla, old, true, false); err != nil {
			return nil, err
		}
	case discLogicalDNS:
		var err error
		if members, err = sh.membersFrom(cla, old, false, true); err != nil {
			return nil, err
		}
		if len(members) != 1 {
			for _, m := range members {
				m.h.release()
			}
			return nil, errors.New("load_assignment: LOGICAL_DNS clusters need exactly one endpoint")
		}
	case discStrictDNS:
		d, err := newDNS(sh, cla)
		if err != nil {
			return nil, err
		}
		c.dns = d
		// Keep serving the previous resolution until the first new one.
		if old != nil {
			for _, m := range old.cur.Load().members {
				m.h.acquire()
				members = append(members, m)
			}
			if len(members) > 0 {
				d.markReady()
			}
		}
	case discOriginalDst:
		if cla != nil && len(cla.GetEndpoints()) > 0 {
			return nil, errors.New("load_assignment: ORIGINAL_DST clusters take no endpoints")
		}
	}
	c.refs.Store(1)
	sh.refs.Add(1)
	c.setMembers(members)
	sh.liveMu.Lock()
	sh.live[c] = struct{}{}
	sh.liveMu.Unlock()
	if c.dns != nil {
		c.dns.start(c)
	}
	return c, nil
}

// membersFrom turns an assignment into members. Each returned host is
// acquired; hosts of old with the same address and transport are reused.
// When ipOnly, addresses must be IPs (STATIC, EDS).
func (sh *shared) membersFrom(cla *endpointv3.ClusterLoadAssignment, old *Cluster, ipOnly, resolve bool) ([]member, error) {
	if err := xdsfield.Check(cla, "load_assignment.", "cluster_name", "endpoints", "policy"); err != nil {
		return nil, err
	}
	if err := xdsfield.Check(cla.GetPolicy(), "load_assignment.policy.", "overprovisioning_factor"); err != nil {
		return nil, err
	}
	reuse := map[string]*host{}
	if old != nil {
		for _, m := range old.cur.Load().members {
			reuse[m.h.addr] = m.h
		}
	}
	var out []member
	fail := func(err error) ([]member, error) {
		for _, m := range out {
			m.h.release()
		}
		return nil, err
	}
	for i, lle := range cla.GetEndpoints() {
		path := fmt.Sprintf("load_assignment.endpoints[%d].", i)
		if err := xdsfield.Check(lle, path, "locality", "lb_endpoints", "load_balancing_weight", "priority", "metadata"); err != nil {
			return fail(err)
		}
		loc := lle.GetLocality()
		locName := loc.GetRegion() + "/" + loc.GetZone() + "/" + loc.GetSubZone()
		lw := u32Or(lle.GetLoadBalancingWeight(), 0)
		for j, lbe := range lle.GetLbEndpoints() {
			epath := fmt.Sprintf("%slb_endpoints[%d].", path, j)
			if err := xdsfield.Check(lbe, epath, "endpoint", "health_status", "metadata", "load_balancing_weight"); err != nil {
				return fail(err)
			}
			ep := lbe.GetEndpoint()
			if err := xdsfield.Check(ep, epath+"endpoint.", "address", "hostname", "health_check_config"); err != nil {
				return fail(err)
			}
			addr, err := socketAddr(ep.GetAddress(), ipOnly)
			if err != nil {
				return fail(fmt.Errorf("%sendpoint.address.%w", epath, err))
			}
			t := sh.cfg.socketFor(lbe.GetMetadata())
			h := reuse[addr]
			if h == nil || h.tls != t {
				h = newHost(sh, addr, t, resolve)
				reuse[addr] = h
			}
			h.acquire()
			var healthy bool
			switch lbe.GetHealthStatus() {
			case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY, corev3.HealthStatus_DEGRADED:
				healthy = true
			}
			w := u32Or(lbe.GetLoadBalancingWeight(), 1)
			if w == 0 {
				return fail(fmt.Errorf("%sload_balancing_weight: must be >= 1", epath))
			}
			out = append(out, member{h: h, weight: w, healthy: healthy, priority: lle.GetPriority(),
				locality: locName, lweight: lw})
		}
	}
	return out, nil
}

func socketAddr(a *corev3.Address, ipOnly bool) (string, error) {
	if err := xdsfield.Check(a, "", "socket_address"); err != nil {
		return "", err
	}
	sa := a.GetSocketAddress()
	if sa == nil {
		return "", errors.New("socket_address: required")
	}
	if err := xdsfield.Check(sa, "socket_address.", "address", "port_value", "protocol", "ipv4_compat"); err != nil {
		return "", err
	}
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return "", errors.New("socket_address.protocol: only TCP is supported")
	}
	port := sa.GetPortValue()
	if port == 0 || port > 65535 {
		return "", fmt.Errorf("socket_address.port_value: %d out of range", port)
	}
	host := sa.GetAddress()
	if host == "" {
		return "", errors.New("socket_address.address: required")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(ip, uint16(port)).String(), nil
	}
	if ipOnly {
		return "", fmt.Errorf("socket_address.address: %q is not an IP address", host)
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port))), nil
}

// setMembers installs a new membership (Build, DNS refresh).
func (c *Cluster) setMembers(ms []member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setMembersLocked(ms)
}

func (c *Cluster) setMembersLocked(ms []member) {
	c.cur.Store(c.newView(ms))
}

// hosts lists the hosts of every live Cluster over sh, once each.
func (sh *shared) hosts() []*host {
	sh.liveMu.Lock()
	defer sh.liveMu.Unlock()
	var out []*host
	seen := map[*host]bool{}
	for c := range sh.live {
		for _, m := range c.cur.Load().members {
			if !seen[m.h] {
				seen[m.h] = true
				out = append(out, m.h)
			}
		}
	}
	return out
}

// release drops one reference; the last one frees hosts and shared state
// not used by any other Cluster.
func (c *Cluster) release() {
	if c.refs.Add(-1) != 0 {
		return
	}
	if c.dns != nil {
		c.dns.stop()
	}
	c.sh.liveMu.Lock()
	delete(c.sh.live, c)
	c.sh.liveMu.Unlock()
	c.mu.Lock()
	v := c.cur.Load()
	c.mu.Unlock()
	for _, m := range v.members {
		m.h.release()
	}
	if c.sh.refs.Add(-1) == 0 {
		c.sh.close()
	}
}

func (sh *shared) close() {
	sh.cancel()
	sh.od.retire()
	sh.dynMu.Lock()
	dyn := sh.dyn
	sh.dyn = map[string]*host{}
	sh.dynMu.Unlock()
	for _, h := range dyn {
		h.close()
	}
}
