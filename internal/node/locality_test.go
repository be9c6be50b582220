package node

import "testing"

// Istio's precedence (pkg/model/proxy.go GetLocalityLabel, kube
// controller getPodLocality): topology.istio.io/locality, then the older
// istio-locality ("." for "/"), then the topology labels.
func TestLocalityFromLabels(t *testing.T) {
	for _, tc := range []struct {
		labels map[string]string
		want   string
	}{
		{nil, ""},
		{map[string]string{LabelLocality: "us-east.a.x", LabelRegion: "eu"}, "us-east/a/x"},
		{map[string]string{LabelLegacyLocality: "us-east.a"}, "us-east/a"},
		{map[string]string{LabelLocality: "r/z"}, "r/z"},
		{map[string]string{LabelRegion: "r1", LabelZone: "z1"}, "r1/z1/"},
		{map[string]string{LabelRegion: "r1", LabelZone: "z1", LabelSubzone: "s1"}, "r1/z1/s1"},
	} {
		if got := LocalityFromLabels(tc.labels); got != tc.want {
			t.Errorf("LocalityFromLabels(%v) = %q, want %q", tc.labels, got, tc.want)
		}
	}
}

func TestLocalityInNode(t *testing.T) {
	m := &Meta{Type: Sidecar, IP: "10.0.0.1", Name: "a", Namespace: "ns", Locality: "region1/zone1/sub1"}
	got, err := Parse(m.Node())
	if err != nil {
		t.Fatal(err)
	}
	if got.Locality != "region1/zone1/sub1" {
		t.Fatalf("locality %q after a round trip", got.Locality)
	}
	for _, bad := range []string{"a/b/c/d", "/zone", "r//sub"} {
		if ValidateLocality(bad) == nil {
			t.Errorf("ValidateLocality(%q) accepted", bad)
		}
	}
}
