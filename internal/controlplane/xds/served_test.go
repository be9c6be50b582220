package xds

import (
	"fmt"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/registry"
	"github.com/weftmesh/weft/internal/controlplane/translate"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/node"
)

// TestServedMatchesBuild runs the real translator behind the server
// (translate.Cache, shared hashes, pre-encoded resources, interning):
// every proxy, over state of the world and delta, in capture and explicit
// mode, in two namespaces, receives exactly translate.Build's output for
// it, before and after an endpoint change and a route change.
func TestServedMatchesBuild(t *testing.T) {
	snap := benchSnapshot(20)
	s := startServerWith(t, snap, nil)
	type client struct {
		m *node.Meta
		c *meshtest.XDSClient
	}
	var clients []client
	for i := range 8 {
		m := &node.Meta{Type: node.Sidecar, IP: fmt.Sprintf("127.0.10.%d", i+1), Name: fmt.Sprintf("app-%d", i),
			Namespace: []string{"default", "other"}[i/4], Labels: map[string]string{"app": fmt.Sprintf("svc-%d", i)},
			Ports: []node.Port{{Name: "http", Port: 8080, Protocol: "HTTP"}}, Capture: i%4 < 2, ProxyPort: 15080, AppAddress: "127.0.20.1"}
		c, err := meshtest.DialXDS(s.addr, m, meshtest.XDSClientOptions{Delta: i%2 == 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		clients = append(clients, client{m, c})
	}
	types := map[string]func(*translate.Output) []proto.Message{
		resource.ClusterType:  func(o *translate.Output) []proto.Message { return asMessages(o.Clusters) },
		resource.EndpointType: func(o *translate.Output) []proto.Message { return asMessages(o.Endpoints) },
		resource.ListenerType: func(o *translate.Output) []proto.Message { return asMessages(o.Listeners) },
		resource.RouteType:    func(o *translate.Output) []proto.Message { return asMessages(o.Routes) },
	}
	verify := func(stage string, snap *model.Snapshot) {
		t.Helper()
		for _, cl := range clients {
			want := translate.Build(snap, &model.Proxy{Meta: cl.m, ID: cl.m.ID(), Services: registry.ServicesFor(snap, cl.m)})
			matches := func(c *meshtest.XDSClient) bool {
				for typ, of := range types {
					got, ws := c.Resources(typ), of(want)
					if len(got) != len(ws) {
						return false
					}
					for _, w := range ws {
						if !proto.Equal(got[meshtest.ResourceName(w)], w) {
							return false
						}
					}
				}
				return true
			}
			if err := cl.c.WaitFor(ctx(t), matches); err != nil {
				t.Fatalf("%s: proxy %s (capture %v) never received translate.Build's output: %v", stage, cl.m.Name, cl.m.Capture, err)
			}
		}
	}
	verify("initial", snap)
	snap = withEndpoint(snap, 3, "198.18.100.1")
	s.Update(snap)
	s.Flush()
	verify("endpoint change", snap)
	snap = withTimeout(snap, 4, 7e9)
	s.Update(snap)
	s.Flush()
	verify("route change", snap)
}

func asMessages[T proto.Message](in []T) []proto.Message {
	out := make([]proto.Message, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}

// TestEncodedMarshalsAsTheResource: the wrapper handed to go-control-plane
// encodes to the resource's own deterministic bytes and carries its name.
func TestEncodedMarshalsAsTheResource(t *testing.T) {
	snap := benchSnapshot(3)
	m := &node.Meta{Type: node.Sidecar, IP: "127.0.10.1", Name: "app", Namespace: "default", Capture: true}
	out := translate.Build(snap, &model.Proxy{Meta: m, ID: m.ID()})
	set, err := (*generation)(nil).versions(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range Types {
		for i, r := range set.list(typ).items {
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			w := set.list(typ).wire[i]
			got, err := proto.MarshalOptions{Deterministic: true}.Marshal(w)
			if err != nil || string(got) != string(want) {
				t.Fatalf("%s %d: encoded %x (%v), want %x", ShortType(typ), i, got, err, want)
			}
			// The bytes are shared with the stored encoding: appending to
			// them must not write into it, and marshaling after a prefix
			// appends.
			_ = append(got, 0xff)
			if again, _ := (proto.MarshalOptions{Deterministic: true}).Marshal(w); string(again) != string(want) {
				t.Fatalf("%s %d: stored encoding changed by an append to a marshaled copy", ShortType(typ), i)
			}
			pre, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend([]byte{1, 2}, w)
			if err != nil || string(pre) != "\x01\x02"+string(want) {
				t.Fatalf("%s %d: MarshalAppend after a prefix: %x (%v)", ShortType(typ), i, pre, err)
			}
			if n := proto.Size(w); n != len(want) {
				t.Fatalf("%s %d: size %d, want %d", ShortType(typ), i, n, len(want))
			}
			if n := w.(*encoded).GetName(); n != meshtest.ResourceName(r) {
				t.Errorf("name %q, want %q", n, meshtest.ResourceName(r))
			}
		}
	}
}
