package listener

import (
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Inbound reports whether the listener takes traffic to the workload
// (traffic_direction INBOUND, as the control plane marks virtualInbound and
// explicit-mode inbound listeners; Envoy's drain_listeners?inboundonly
// reads the same field).
func (c *Config) Inbound() bool {
	return c.Source.GetTrafficDirection() == corev3.TrafficDirection_INBOUND
}

// DrainInbound starts a graceful drain of the inbound listeners only, as
// Envoy's drain_listeners?inboundonly&graceful, which Istio's native
// sidecar runs from its preStop hook when the pod starts terminating:
// inbound listeners keep accepting and serving (the app is still shutting
// down), but every HTTP/1 response ends its connection and HTTP/2
// connections get GOAWAY, so clients move to other endpoints; idle inbound
// connections close when the drain timeout has passed. Outbound listeners
// are untouched: the app may still call out while it stops. Inbound
// listeners of later updates drain too. Calling it again does nothing.
func (m *Manager) DrainInbound() {
	m.mu.Lock()
	if m.drainingIn {
		m.mu.Unlock()
		return
	}
	m.drainingIn = true
	cfgs := m.inboundLocked()
	m.mu.Unlock()
	for _, c := range cfgs {
		c.retireAll()
	}
	time.AfterFunc(m.opts.DrainTimeout, func() {
		m.mu.Lock()
		cfgs := m.inboundLocked()
		m.mu.Unlock()
		for _, c := range cfgs {
			c.closeIdle()
		}
	})
}

// inboundLocked lists the inbound configs, bound or reached by original
// destination hand-off. m.mu must be held.
func (m *Manager) inboundLocked() []*Config {
	var out []*Config
	for _, s := range m.live {
		if c := s.cfg.Load(); c.Inbound() {
			out = append(out, c)
		}
	}
	if idx := m.byAddr.Load(); idx != nil {
		for _, c := range *idx {
			if c.Inbound() {
				out = append(out, c)
			}
		}
	}
	return out
}

// StopAcceptingInbound closes the inbound listening sockets (Envoy's
// drain_listeners?inboundonly without graceful); open connections go on.
func (m *Manager) StopAcceptingInbound() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.live {
		if s.cfg.Load().Inbound() {
			s.ln.Close()
		}
	}
}
