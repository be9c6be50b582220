package telemetry

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/weftmesh/weft/internal/meshtls"
	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/rflag"
)

// durationBuckets are Envoy's default histogram buckets, which Istio's
// istio_request_duration_milliseconds and the byte histograms use.
var durationBuckets = [...]uint64{0, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
	60000, 300000, 600000, 1800000, 3600000}

// bucketNames are the le values as Envoy prints them (the first is 0.5).
var bucketNames = [...]string{"0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000",
	"10000", "30000", "60000", "300000", "600000", "1.8e+06", "3.6e+06"}

// histogram counts integer observations (Envoy records milliseconds and
// bytes as integers); counts are per bucket, rendered cumulatively.
type histogram struct {
	counts [len(durationBuckets) + 1]atomic.Uint64
	sum    atomic.Uint64
}

func (h *histogram) observe(v uint64) {
	i := 0
	// Bucket 0 is le=0.5: only a zero fits it.
	for i < len(durationBuckets) && v > durationBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(v)
}

// cowMap is a read-mostly map with typed keys (sync.Map's scheme): reads
// of promoted keys are a lock-free load of an immutable map; a miss takes
// the mutex and goes to the dirty map, which is promoted once it has
// missed as often as it is large, so copying is amortized O(1) per miss.
type cowMap[K comparable, V any] struct {
	read   atomic.Pointer[map[K]V]
	mu     sync.Mutex
	dirty  map[K]V // nil, or a superset of read
	misses int
}

// lookup is the lock-free read alone.
func (c *cowMap[K, V]) lookup(k K) (V, bool) {
	if m := c.read.Load(); m != nil {
		v, ok := (*m)[k]
		return v, ok
	}
	var zero V
	return zero, false
}

func (c *cowMap[K, V]) get(k K, mk func() V) V {
	if v, ok := c.lookup(k); ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.lookup(k); ok {
		return v
	}
	if c.dirty == nil {
		c.dirty = map[K]V{}
		if m := c.read.Load(); m != nil {
			for k2, v2 := range *m {
				c.dirty[k2] = v2
			}
		}
	}
	v, ok := c.dirty[k]
	if !ok {
		v = mk()
		c.dirty[k] = v
	}
	if c.misses++; c.misses >= len(c.dirty) {
		d := c.dirty
		c.read.Store(&d)
		c.dirty, c.misses = nil, 0
	}
	return v
}

func (c *cowMap[K, V]) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dirty != nil {
		return len(c.dirty)
	}
	if m := c.read.Load(); m != nil {
		return len(*m)
	}
	return 0
}

func (c *cowMap[K, V]) each(fn func(V)) {
	c.mu.Lock()
	m := c.dirty
	if m == nil {
		if r := c.read.Load(); r != nil {
			m = *r
		}
	}
	vs := make([]V, 0, len(m))
	for _, v := range m {
		vs = append(vs, v)
	}
	c.mu.Unlock()
	for _, v := range vs {
		fn(v)
	}
}

// maxSeries bounds the HTTP series a proxy creates for distinct
// authorities (see recordHTTP).
const maxSeries = 10000

// httpKey is what distinguishes one HTTP series; comparable, built
// without allocation from the stream info.
type httpKey struct {
	dest       bool
	peer       *Workload
	cluster    string
	authority  string  // only when neither cluster nor its metadata names the service
	svc        service // destination reporter: from the cluster's istio.services
	code       int
	flags      rflag.Flags
	grpc       bool
	grpcStatus string
	mtls       bool
	principal  string // the peer's, under mTLS
	local      string // this proxy's, under mTLS
}

type httpSeries struct {
	labels   string // without braces
	requests atomic.Uint64
	duration histogram
	reqBytes histogram
	rspBytes histogram
}

type tcpKey struct {
	dest      bool
	peer      *Workload
	cluster   string
	svc       service // destination reporter: from the cluster's istio.services
	flags     rflag.Flags
	mtls      bool
	principal string
	local     string
}

type tcpSeries struct {
	labels                   string
	opened, closed           atomic.Uint64
	sentBytes, receivedBytes atomic.Uint64
}

// Metrics holds Istio's standard metrics for one proxy.
type Metrics struct {
	local  *Workload
	router bool
	// clusterSvc reads a cluster's istio.services (Options.ClusterService).
	clusterSvc func(cluster string) (host, name, namespace string, ok bool)
	http       cowMap[httpKey, *httpSeries]
	tcp        cowMap[tcpKey, *tcpSeries]
}

func newMetrics(local *Workload, router bool) *Metrics {
	return &Metrics{local: local, router: router}
}

// security returns connection_security_policy inputs for a server-side
// connection: mutual TLS when the peer presented a certificate this proxy
// verified, with the peer's SPIFFE id (source_principal) and this proxy's
// own (destination_principal); "unknown" where a certificate has none.
func security(d *downstream.Info) (mtls bool, principal, local string) {
	if d == nil || d.TLS == nil || len(d.TLS.PeerCertificates) == 0 || len(d.TLS.VerifiedChains) == 0 {
		return false, "", ""
	}
	principal, local = unknown, unknown
	if id, ok := d.PeerIdentity(); ok {
		principal = id.String()
	}
	if id, ok := d.LocalIdentity(); ok {
		local = id.String()
	}
	return true, principal, local
}

// recordHTTP counts one finished request.
func (m *Metrics) recordHTTP(info *filter.Info, dest bool, peer *Workload, grpc bool, grpcStatus string) {
	if peer == nil {
		peer = unknownWorkload
	}
	k := httpKey{dest: dest, peer: peer, cluster: info.Cluster, code: info.Status, flags: info.Flags,
		grpc: grpc, grpcStatus: grpcStatus}
	if dest {
		k.svc = m.metadataService(info.Cluster)
	}
	if k.svc.host == "" && (dest || !strings.HasPrefix(info.Cluster, "outbound|")) {
		k.authority = info.Authority
	}
	if dest {
		k.mtls, k.principal, k.local = security(info.Downstream)
	} else if info.UpstreamPeer != nil {
		// Client side: the server's identity from the certificate the
		// cluster verified.
		k.principal = unknown
		if id, err := meshtls.CertIdentity(info.UpstreamPeer); err == nil {
			k.principal = id.String()
		}
	}
	s, ok := m.http.lookup(k)
	if !ok {
		if m.http.size() >= maxSeries {
			// The Host header is the client's: past the cap, new hosts
			// fold into one series instead of growing memory.
			k.authority = ""
		}
		s = m.http.get(k, func() *httpSeries { return &httpSeries{labels: m.httpLabels(&k)} })
	}
	s.requests.Add(1)
	ms := info.Duration.Milliseconds()
	if ms < 0 {
		ms = 0
	}
	s.duration.observe(uint64(ms))
	s.reqBytes.observe(uint64(max(info.BytesIn, 0)))
	s.rspBytes.observe(uint64(max(info.BytesOut, 0)))
}

// metadataService is the service the cluster's metadata names, for the
// destination reporter (zero when none). Part of the series key, so a
// cluster whose metadata changes starts new series.
func (m *Metrics) metadataService(cluster string) service {
	if m.clusterSvc == nil || m.router || cluster == "" {
		return service{}
	}
	h, n, ns, ok := m.clusterSvc(cluster)
	if !ok || h == "" {
		return service{}
	}
	if n == "" {
		n = unknown
	}
	if ns == "" {
		ns = unknown
	}
	return service{host: h, name: n, namespace: ns}
}

// destService is the destination_service triple for a series: the
// cluster metadata's service when known (svc), else from the cluster name,
// else from the Host.
func (m *Metrics) destService(svc service, cluster, authority string) service {
	if svc.host != "" {
		return svc
	}
	if s, ok := serviceOfCluster(cluster); ok {
		if s.host == "" {
			// Passthrough / BlackHole: the service is the requested host.
			s.host = serviceOfHost(authority, "").host
		}
		return s
	}
	if authority != "" {
		// A short name resolves in the proxy's namespace (the Kubernetes
		// DNS search path of the client, and the server's own service).
		return serviceOfHost(authority, m.local.Namespace)
	}
	return service{host: unknown, name: unknown, namespace: unknown}
}

// common renders the labels HTTP and TCP share, in Istio's order, up to
// connection_security_policy.
func (m *Metrics) common(l *labelWriter, dest bool, peer *Workload, svc service, cluster, authority string, mtls bool, principal, local, proto string, flags rflag.Flags) {
	src, dst := m.local, peer
	srcP, dstP := unknown, unknown
	reporter := "source"
	if !dest && principal != "" {
		dstP = principal
	}
	if dest && !m.router {
		src, dst = peer, m.local
		reporter = "destination"
		if mtls {
			srcP, dstP = principal, local
		}
	}
	svc = m.destService(svc, cluster, authority)
	l.add("reporter", reporter)
	l.workload("source", src, srcP)
	l.add("source_cluster", src.Cluster)
	l.add("destination_workload", dst.Name)
	l.add("destination_workload_namespace", dst.Namespace)
	l.add("destination_principal", dstP)
	l.add("destination_app", dst.App)
	l.add("destination_version", dst.Version)
	l.add("destination_service", svc.host)
	l.add("destination_service_name", svc.name)
	l.add("destination_service_namespace", svc.namespace)
	l.add("destination_canonical_service", dst.CanonicalService)
	l.add("destination_canonical_revision", dst.CanonicalRevision)
	l.add("destination_cluster", dst.Cluster)
	l.add("request_protocol", proto)
	l.add("response_flags", flags.String())
	policy := "unknown"
	if reporter == "destination" {
		policy = "none"
		if mtls {
			policy = "mutual_tls"
		}
	}
	l.add("connection_security_policy", policy)
}

func (m *Metrics) httpLabels(k *httpKey) string {
	var l labelWriter
	proto := "http"
	if k.grpc {
		proto = "grpc"
	}
	m.common(&l, k.dest, k.peer, k.svc, k.cluster, k.authority, k.mtls, k.principal, k.local, proto, k.flags)
	l.add("response_code", itoa(k.code))
	l.add("grpc_response_status", k.grpcStatus)
	s := l.String()
	return s[1 : len(s)-1]
}

func (m *Metrics) tcpSeries(dest bool, d *downstream.Info, cluster string, flags rflag.Flags) *tcpSeries {
	k := tcpKey{dest: dest, peer: unknownWorkload, cluster: cluster, flags: flags}
	if dest {
		k.mtls, k.principal, k.local = security(d)
		k.svc = m.metadataService(cluster)
	}
	return m.tcp.get(k, func() *tcpSeries {
		var l labelWriter
		m.common(&l, k.dest, k.peer, k.svc, k.cluster, "", k.mtls, k.principal, k.local, "tcp", k.flags)
		s := l.String()
		return &tcpSeries{labels: s[1 : len(s)-1]}
	})
}
