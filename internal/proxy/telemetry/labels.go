package telemetry

import (
	"net"
	"strconv"
	"strings"

	"github.com/weftmesh/weft/internal/promtext"
)

// service is the destination service as the labels name it.
type service struct {
	host, name, namespace string
}

// serviceOfCluster reads Istio's cluster naming:
// outbound|9080|v1|reviews.default.svc.cluster.local → the FQDN, and the
// special clusters by name (Istio: destination_service_name is
// PassthroughCluster / BlackHoleCluster / InboundPassthroughClusterIpv4).
// ok is false when the cluster does not name a service (inbound|…, other).
func serviceOfCluster(cluster string) (service, bool) {
	switch cluster {
	case "PassthroughCluster", "BlackHoleCluster", "InboundPassthroughClusterIpv4", "InboundPassthroughClusterIpv6":
		return service{name: cluster, namespace: unknown}, true
	}
	parts := strings.Split(cluster, "|")
	if len(parts) != 4 || parts[0] != "outbound" || parts[3] == "" {
		return service{}, false
	}
	return serviceOfHost(parts[3], ""), true
}

// serviceOfHost names the service a host (FQDN or a Kubernetes short name
// with an optional port) refers to. A short name resolves in namespace
// localNS, as the Kubernetes DNS search path does; a name outside
// .svc.<domain> keeps the whole host as its name and "unknown" namespace.
func serviceOfHost(host, localNS string) service {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" {
		return service{host: unknown, name: unknown, namespace: unknown}
	}
	labels := strings.Split(host, ".")
	switch {
	case len(labels) >= 3 && labels[2] == "svc":
		return service{host: host, name: labels[0], namespace: labels[1]}
	case len(labels) == 1 && localNS != "" && !isIP(host):
		return service{host: host + "." + localNS + ".svc.cluster.local", name: host, namespace: localNS}
	case len(labels) == 2 && localNS != "":
		return service{host: host + ".svc.cluster.local", name: labels[0], namespace: labels[1]}
	}
	return service{host: host, name: host, namespace: unknown}
}

func isIP(s string) bool { return net.ParseIP(s) != nil }

// labelWriter renders a Prometheus label set once per series.
type labelWriter struct{ b strings.Builder }

func (l *labelWriter) add(k, v string) {
	if l.b.Len() == 0 {
		l.b.WriteByte('{')
	} else {
		l.b.WriteByte(',')
	}
	l.b.WriteString(k)
	l.b.WriteString(`="`)
	l.b.WriteString(promtext.EscapeLabel(v))
	l.b.WriteByte('"')
}

func (l *labelWriter) String() string { return l.b.String() + "}" }

// peerLabels adds the source_* or destination_* workload labels in
// Istio's order (istio_stats.cc all_tags_).
func (l *labelWriter) workload(side string, w *Workload, principal string) {
	l.add(side+"_workload", w.Name)
	l.add(side+"_workload_namespace", w.Namespace)
	l.add(side+"_principal", principal)
	l.add(side+"_app", w.App)
	l.add(side+"_version", w.Version)
	l.add(side+"_canonical_service", w.CanonicalService)
	l.add(side+"_canonical_revision", w.CanonicalRevision)
}

func itoa(n int) string { return strconv.Itoa(n) }
