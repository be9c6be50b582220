package node

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/weftmesh/weft/internal/meshtest"
)

// accessLogs turns on the sidecars' access logs (Istio's Telemetry API,
// provider envoy) for the pods of each app label in ns until t ends, so a
// failed request can be traced hop by hop with its response flags.
func accessLogs(t *testing.T, m *nodeMesh, ns string, apps ...string) {
	t.Helper()
	var b strings.Builder
	for _, app := range apps {
		b.WriteString(`apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: access-` + app + `, namespace: ` + ns + `}
spec:
  selector: {matchLabels: {app: ` + app + `}}
  accessLogging: [{providers: [{name: envoy}]}]
---
`)
	}
	m.Apply(t, b.String())
}

// follower collects a container's log from now until the container ends
// (kubectl logs -f), for pods that are gone when the test looks.
type follower struct {
	done chan struct{}
	mu   sync.Mutex
	out  string
}

func follow(ctx context.Context, m *nodeMesh, pod, container string) *follower {
	f := &follower{done: make(chan struct{})}
	go func() {
		defer close(f.done)
		out, _ := m.n.Kubectl(ctx, nil, "logs", "-f", pod, "-c", container)
		f.mu.Lock()
		f.out = out
		f.mu.Unlock()
	}()
	return f
}

// text waits for the follow to end (or ctx) and returns what it read.
func (f *follower) text(ctx context.Context) string {
	select {
	case <-f.done:
	case <-ctx.Done():
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out
}

// notOK returns the access log lines (default text format) whose response
// code is not 200, or that carry response flags, and how many lines there
// were in all.
func notOK(log string) (out []string, all int) {
	for _, line := range strings.Split(log, "\n") {
		if strings.HasPrefix(line, "[pod/") { // kubectl logs --prefix
			_, line, _ = strings.Cut(line, "] ")
		}
		f := meshtest.AccessLogFields(line)
		if len(f) < meshtest.LogFieldCount || !strings.HasPrefix(f[meshtest.LogRequestLine], "GET ") && !strings.HasPrefix(f[meshtest.LogRequestLine], "POST ") {
			continue
		}
		all++
		if f[meshtest.LogCode] != "200" || f[meshtest.LogFlags] != "-" {
			out = append(out, line)
		}
	}
	return out, all
}

// hops follows a pod that is about to leave: its sidecar's and its app's
// logs, read until they end (the pod is gone when the test looks).
type hops struct {
	pod        string
	proxy, app *follower
}

func watchHops(ctx context.Context, m *nodeMesh, pod, app string) *hops {
	return &hops{pod: pod, proxy: follow(ctx, m, pod, "istio-proxy"), app: follow(ctx, m, pod, app)}
}

// report logs every access-log line that is not a clean 200 at each hop:
// the leaving pod's sidecar (inbound), its callers' sidecars (the ingress
// gateway, productpage) and, when requests failed, the end of the leaving
// app's log.
func (h *hops) report(ctx context.Context, t *testing.T, m *nodeMesh, failed bool) {
	t.Helper()
	logs := func(args ...string) string {
		out, _ := m.n.Kubectl(ctx, nil, append([]string{"logs", "-c", "istio-proxy", "--since=5m", "--tail=-1", "--prefix"}, args...)...)
		return out
	}
	own := h.proxy.text(ctx)
	checkPreStopDrain(t, h.pod, own)
	for _, hop := range []struct{ name, log string }{
		{"leaving pod's sidecar " + h.pod, own},
		{"ingress gateway", logs("-n", "istio-system", "-l", "app=istio-ingressgateway")},
		{"productpage sidecars", logs("-l", "app=productpage")},
	} {
		bad, all := notOK(hop.log)
		t.Logf("%s: %d of %d access-log lines not a clean 200", hop.name, len(bad), all)
		for _, l := range bad {
			t.Logf("  %s", l)
		}
	}
	if failed {
		app := h.app.text(ctx)
		if i := len(app) - 4000; i > 0 {
			app = app[i:]
		}
		t.Logf("the leaving app's log, the end:\n%s", app)
	}
}
