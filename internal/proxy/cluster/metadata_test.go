package cluster

import (
	"reflect"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

func istioMetadata(t *testing.T, services ...any) *corev3.Metadata {
	t.Helper()
	st, err := structpb.NewStruct(map[string]any{"services": services})
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": st}}
}

func TestServicesFromMetadata(t *testing.T) {
	with := staticCluster("inbound|9080||", "127.0.0.1:1")
	with.Metadata = istioMetadata(t,
		map[string]any{"host": "productpage.default.svc.cluster.local", "name": "productpage", "namespace": "default"},
		"not an object",
		map[string]any{"name": "no-host"},
		map[string]any{"host": "pp-alias.default.svc.cluster.local", "name": "pp-alias", "namespace": "default"},
	)
	without := staticCluster("plain", "127.0.0.1:1")
	s := build(t, nil, []*clusterv3.Cluster{with, without}, nil, Options{})
	defer s.Close()

	want := []Service{
		{Host: "productpage.default.svc.cluster.local", Name: "productpage", Namespace: "default"},
		{Host: "pp-alias.default.svc.cluster.local", Name: "pp-alias", Namespace: "default"},
	}
	c := s.Get("inbound|9080||")
	if got := c.Services(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Services() = %+v, want %+v", got, want)
	}
	if c.Metadata().GetFilterMetadata()["istio"] == nil {
		t.Fatal("Metadata() lost the istio namespace")
	}
	if got := s.Get("plain").Services(); got != nil {
		t.Fatalf("cluster without metadata: Services() = %+v", got)
	}

	// A metadata-only change is a changed cluster: the new Set sees it.
	with2 := staticCluster("inbound|9080||", "127.0.0.1:1")
	with2.Metadata = istioMetadata(t, map[string]any{"host": "other.ns.svc.cluster.local", "name": "other", "namespace": "ns"})
	s2 := build(t, s, []*clusterv3.Cluster{with2, without}, nil, Options{})
	defer s2.Close()
	if got := s2.Get("inbound|9080||").Services(); len(got) != 1 || got[0].Name != "other" {
		t.Fatalf("after update: Services() = %+v", got)
	}
}
