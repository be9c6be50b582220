package xds

import (
	"context"
	"fmt"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftmesh/weft/internal/node"
)

// A proxy re-sends its node on a lifecycle change (starting, ready,
// draining) while config pushes run. Under -race this caught the push
// reading the proxy's metadata without the lock that the lifecycle update
// replaces it under (CI, identity e2e's root rotation).
func TestLifecycleChangeDuringPushes(t *testing.T) {
	s := startServer(t, snapshot("10.0.0.1"))
	cc, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(c)
	if err != nil {
		t.Fatal(err)
	}
	m := meta("reviews")
	m.Lifecycle = node.LifecycleStarting
	if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, Node: m.Node()}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, err := st.Recv(); err != nil {
				return
			}
		}
	}()
	waitStatus(t, s.Server, m.ID(), func(ps ProxyStatus) bool { return ps.Lifecycle == "starting" })

	pushes := make(chan struct{})
	go func() {
		defer close(pushes)
		for i := range 40 {
			s.Update(snapshot("10.0.0.1", fmt.Sprintf("10.0.1.%d", i)))
			s.flush() // push now, not after the debounce
		}
	}()
	states := []node.Lifecycle{"", node.LifecycleStarting}
	for i := 0; ; i++ {
		select {
		case <-pushes:
		default:
			m.Lifecycle = states[i%2]
			if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, Node: m.Node(), ResponseNonce: "n"}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		break
	}
	m.Lifecycle = node.LifecycleDraining
	if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, Node: m.Node(), ResponseNonce: "n"}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s.Server, m.ID(), func(ps ProxyStatus) bool { return ps.Lifecycle == "draining" })
}
