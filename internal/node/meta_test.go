package node

import (
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	in := &Meta{
		Type: Sidecar, IP: "127.0.10.3", Name: "reviews-v2", Namespace: "default",
		ServiceAccount: "bookinfo-reviews", Labels: map[string]string{"app": "reviews", "version": "v2"},
		Ports:   []Port{{Name: "http", Port: 9080, Protocol: "HTTP"}},
		Capture: false, AppAddress: "127.0.11.3", ProxyPort: 15080, Version: "dev",
		NodeName: "weft-node",
	}
	if got := in.ID(); got != "sidecar~127.0.10.3~reviews-v2.default~default.svc.cluster.local" {
		t.Fatalf("id = %q", got)
	}
	out, err := Parse(in.Node())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n in %+v\nout %+v", in, out)
	}
}

func TestParseErrors(t *testing.T) {
	for _, id := range []string{"", "x", "gateway~1.2.3.4~a.b~b.svc.cluster.local"} {
		m := &Meta{}
		n := m.Node()
		n.Id = id
		if _, err := Parse(n); err == nil {
			t.Errorf("Parse(id=%q) succeeded", id)
		}
	}
}

func TestParsePorts(t *testing.T) {
	got, err := ParsePorts("9080, grpc:50051, tcp-echo:9000:TCP")
	if err != nil {
		t.Fatal(err)
	}
	want := []Port{{"http-9080", 9080, "HTTP"}, {"grpc", 50051, "GRPC"}, {"tcp-echo", 9000, "TCP"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	for _, bad := range []string{"0", "70000", "a:b:c:d", "x:y"} {
		if _, err := ParsePorts(bad); err == nil {
			t.Errorf("ParsePorts(%q) succeeded", bad)
		}
	}
}
