package cluster

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Service is one entry of a cluster's istio.services filter metadata: the
// mesh service the cluster's traffic belongs to (Istio puts it on inbound
// and outbound clusters; the stats filter names destination_service from
// it).
type Service struct {
	Host, Name, Namespace string
}

// Metadata returns the cluster resource's metadata (nil when it has none).
// Callers must not modify it.
func (c *Cluster) Metadata() *corev3.Metadata { return c.sh.src.GetMetadata() }

// Services returns the cluster's istio.services, parsed once when the
// cluster was built, in order. Callers must not modify the slice.
func (c *Cluster) Services() []Service { return c.sh.cfg.services }

// istioServices reads filter_metadata.istio.services; entries that are not
// objects, or have no host, are skipped (metadata is advisory: a malformed
// entry must not reject the cluster).
func istioServices(md *corev3.Metadata) []Service {
	list := md.GetFilterMetadata()["istio"].GetFields()["services"].GetListValue().GetValues()
	var out []Service
	for _, v := range list {
		f := v.GetStructValue().GetFields()
		s := Service{Host: f["host"].GetStringValue(), Name: f["name"].GetStringValue(), Namespace: f["namespace"].GetStringValue()}
		if s.Host != "" {
			out = append(out, s)
		}
	}
	return out
}
