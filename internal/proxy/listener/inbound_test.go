package listener

import (
	"context"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// DrainInbound (the native sidecar's preStop: drain_listeners?inboundonly&
// graceful) retires only the INBOUND listeners' handlers, present and of
// later updates; they keep accepting, and their idle connections close
// after the drain timeout. Outbound listeners are left alone.
func TestDrainInboundOnly(t *testing.T) {
	deps := sharedDeps{"in": {}, "out": {}, "in2": {}}
	m := NewManager(Options{DrainTimeout: 100 * time.Millisecond})
	defer m.Close(context.Background())
	inPort, outPort := freePort(t), freePort(t)
	in := func(tag string) *Config {
		return compile(t, &listenerv3.Listener{Name: "virtualInbound", Address: sockAddr("127.0.0.1", inPort),
			TrafficDirection: corev3.TrafficDirection_INBOUND, FilterChains: []*listenerv3.FilterChain{fc(tag, nil)}}, deps)
	}
	out := compile(t, &listenerv3.Listener{Name: "virtualOutbound", Address: sockAddr("127.0.0.1", outPort),
		FilterChains: []*listenerv3.FilterChain{fc("out", nil)}}, deps)
	if !in("in").Inbound() || out.Inbound() {
		t.Fatal("Inbound() does not follow traffic_direction")
	}
	if err := m.Update([]*Config{in("in"), out}); err != nil {
		t.Fatal(err)
	}
	m.DrainInbound()
	if deps["in"].retired.Load() == 0 {
		t.Error("the inbound handler was not retired")
	}
	if deps["out"].retired.Load() != 0 {
		t.Error("the outbound handler was retired")
	}
	addr, _ := m.Addr("virtualInbound")
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("the draining inbound listener stopped accepting: %v", err)
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for deps["in"].idleClosed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle inbound connections never closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if deps["out"].idleClosed.Load() != 0 {
		t.Error("idle outbound connections closed")
	}
	// An update during the drain: its inbound handler drains too.
	if err := m.Update([]*Config{in("in2"), out}); err != nil {
		t.Fatal(err)
	}
	if deps["in2"].retired.Load() == 0 || deps["out"].retired.Load() != 0 {
		t.Errorf("after an update: new inbound retired %d, outbound %d; want >0, 0", deps["in2"].retired.Load(), deps["out"].retired.Load())
	}
	m.DrainInbound() // again: nothing more
	// Without graceful, inbound listeners only stop accepting.
	m.StopAcceptingInbound()
	if _, err := net.DialTimeout("tcp", addr.String(), time.Second); err == nil {
		t.Error("the inbound listener still accepts after StopAcceptingInbound")
	}
	oaddr, _ := m.Addr("virtualOutbound")
	c, err = net.Dial("tcp", oaddr.String())
	if err != nil {
		t.Fatalf("the outbound listener stopped accepting: %v", err)
	}
	c.Close()
}
