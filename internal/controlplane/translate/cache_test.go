package translate

import (
	"fmt"
	"slices"
	"sort"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	telemetryapi "istio.io/api/telemetry/v1alpha1"
	typev1beta1 "istio.io/api/type/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/node"
)

// diffOutputs returns the first difference between two outputs, "" if
// they hold equal resources in the same order.
func diffOutputs(want, got *Output) string {
	lists := []struct {
		name      string
		want, got []proto.Message
	}{
		{"listeners", msgs(want.Listeners), msgs(got.Listeners)},
		{"routes", msgs(want.Routes), msgs(got.Routes)},
		{"clusters", msgs(want.Clusters), msgs(got.Clusters)},
		{"endpoints", msgs(want.Endpoints), msgs(got.Endpoints)},
		{"secrets", msgs(want.Secrets), msgs(got.Secrets)},
	}
	for _, l := range lists {
		if len(l.want) != len(l.got) {
			return fmt.Sprintf("%s: %d resources, want %d", l.name, len(l.got), len(l.want))
		}
		for i := range l.want {
			if !proto.Equal(l.want[i], l.got[i]) {
				return fmt.Sprintf("%s[%d]:\n got %v\nwant %v", l.name, i, l.got[i], l.want[i])
			}
		}
	}
	return ""
}

// cacheVariants are every golden proxy in every role, with every case's
// namespaces and label sets, so proxies that share a cache key and
// proxies that must not are both covered.
func cacheVariants(proxies []*model.Proxy) []*model.Proxy {
	modes := []func(m *node.Meta){
		func(m *node.Meta) { m.Type, m.Capture, m.Generator = node.Sidecar, true, "" },
		func(m *node.Meta) { m.Type, m.Capture, m.Generator, m.ProxyPort = node.Sidecar, false, "", 15080 },
		func(m *node.Meta) { m.Type, m.Capture, m.Generator, m.ProxyPort = node.Sidecar, false, "", 0 },
		func(m *node.Meta) { m.Type, m.Generator = node.Router, "" },
		func(m *node.Meta) { m.Type, m.Generator = node.Sidecar, "grpc" },
	}
	var out []*model.Proxy
	for _, p := range proxies {
		for _, q := range proxies {
			for _, mode := range modes {
				m := *p.Meta
				m.Namespace, m.Labels = q.Meta.Namespace, q.Meta.Labels
				mode(&m)
				out = append(out, &model.Proxy{Meta: &m, ID: m.ID(), Services: p.Services})
			}
		}
	}
	return out
}

// TestCacheMatchesBuild: for every golden case, a Cache shared by all
// variants gives each proxy exactly what Build gives it, and Cache.Check
// reports what Output.Check reports. Outputs are compared after all were
// built, so a later build modifying a shared resource would show.
func TestCacheMatchesBuild(t *testing.T) {
	for _, dir := range cases(t) {
		snap, _, proxies := loadCase(t, dir)
		c := NewCache(snap)
		variants := cacheVariants(proxies)
		outs := make([]*Output, len(variants))
		for i, p := range variants {
			outs[i] = c.Build(p)
		}
		for i, p := range variants {
			want := Build(snap, p)
			if d := diffOutputs(want, outs[i]); d != "" {
				t.Fatalf("%s: proxy %s (ns %s, labels %v, capture %v, port %d, type %s %s): %s", dir, p.Meta.Name,
					p.Meta.Namespace, p.Meta.Labels, p.Meta.Capture, p.Meta.ProxyPort, p.Meta.Type, p.Meta.Generator, d)
			}
			if got, want := fmt.Sprint(c.Check(outs[i])), fmt.Sprint(want.Check()); got != want {
				t.Errorf("%s: proxy %s: Cache.Check = %s, Output.Check = %s", dir, p.Meta.Name, got, want)
			}
		}
	}
}

// TestCacheSharesByKey checks what is shared: sidecars that differ only in
// what outbound translation ignores share outbound resources; a label a
// sourceLabels match, a workloadSelector or a Telemetry selector looks at
// separates them, and so does the namespace.
func TestCacheSharesByKey(t *testing.T) {
	snap := syntheticMesh(5)
	vs := snap.VirtualServices[0]
	vs.Spec.Http = append([]*networking.HTTPRoute{{
		Match: []*networking.HTTPMatchRequest{{SourceLabels: map[string]string{"team": "a"}}},
		Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "svc000", Subset: "v2"}}},
	}}, vs.Spec.Http...)
	dr := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: "selected", Namespace: "default"}}
	dr.Spec.Host = "svc001"
	dr.Spec.WorkloadSelector = &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"ring": "canary"}}
	dr.Spec.TrafficPolicy = &networking.TrafficPolicy{LoadBalancer: &networking.LoadBalancerSettings{
		LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: networking.LoadBalancerSettings_RANDOM}}}
	snap.DestinationRules = append(snap.DestinationRules, dr)
	tel := &telemetryv1.Telemetry{ObjectMeta: metav1.ObjectMeta{Name: "logs", Namespace: "default"}}
	tel.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"logs": "on"}}
	tel.Spec.AccessLogging = []*telemetryapi.AccessLogging{{}}
	snap.Telemetries = append(snap.Telemetries, tel)

	proxy := func(name, ns string, labels map[string]string) *model.Proxy {
		m := &node.Meta{Type: node.Sidecar, IP: "127.0.10." + name, Name: "app" + name, Namespace: ns, Labels: labels, Capture: true,
			Ports: []node.Port{{Name: "http", Port: 8080, Protocol: "HTTP"}}}
		return &model.Proxy{Meta: m, ID: m.ID()}
	}
	c := NewCache(snap)
	route := func(p *model.Proxy) *routev3.RouteConfiguration { return findRC(c.Build(p), "8080") }
	base := route(proxy("1", "default", map[string]string{"app": "x"}))
	tests := []struct {
		name   string
		p      *model.Proxy
		shared bool
	}{
		{"other ignored labels", proxy("2", "default", map[string]string{"app": "y", "version": "v3"}), true},
		{"sourceLabels match", proxy("3", "default", map[string]string{"team": "a"}), false},
		{"workloadSelector match", proxy("4", "default", map[string]string{"ring": "canary"}), false},
		{"telemetry selector match", proxy("5", "default", map[string]string{"logs": "on"}), false},
		{"other namespace", proxy("6", "other", map[string]string{"app": "x"}), false},
	}
	for _, tt := range tests {
		got := route(tt.p)
		if (got == base) != tt.shared {
			t.Errorf("%s: route config 8080 shared = %v, want %v", tt.name, got == base, tt.shared)
		}
		if d := diffOutputs(Build(snap, tt.p), c.Build(tt.p)); d != "" {
			t.Errorf("%s: %s", tt.name, d)
		}
	}
	if !c.Shared(base) {
		t.Error("Shared(outbound route config) = false")
	}
	if in := findRC(c.Build(proxy("1", "default", nil)), "inbound|8080||"); in == nil || c.Shared(in) {
		t.Errorf("inbound route config %v: must exist and not be shared", in)
	}
}

func findRC(o *Output, name string) *routev3.RouteConfiguration {
	for _, rc := range o.Routes {
		if rc.Name == name {
			return rc
		}
	}
	return nil
}

// problems lists the problems an error reports, sorted.
func problems(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, e.Error())
		}
	} else {
		out = []string{err.Error()}
	}
	sort.Strings(out)
	return out
}

// layered splits o as Cache.Build does: the first fraction f of each list
// is the shared part, the rest the proxy's own.
func layered(o *Output, f float64) *Output {
	split := func(n int) int { return int(float64(n)*f + 0.5) }
	shared := &Output{Listeners: o.Listeners[:split(len(o.Listeners))], Routes: o.Routes[:split(len(o.Routes))],
		Clusters: o.Clusters[:split(len(o.Clusters))], Endpoints: o.Endpoints[:split(len(o.Endpoints))], Secrets: o.Secrets[:split(len(o.Secrets))]}
	own := &Output{Listeners: o.Listeners[len(shared.Listeners):], Routes: o.Routes[len(shared.Routes):],
		Clusters: o.Clusters[len(shared.Clusters):], Endpoints: o.Endpoints[len(shared.Endpoints):], Secrets: o.Secrets[len(shared.Secrets):]}
	l := *o
	l.shared, l.own = shared, own
	return &l
}

// TestLayeredCheckFindsWhatCheckFinds: every inconsistency Output.Check
// reports is reported by Cache.Check on the same output split into a
// shared and an own part, wherever the split falls (the shared part's
// index is built once and reused, as for many proxies).
func TestLayeredCheckFindsWhatCheckFinds(t *testing.T) {
	for _, m := range checkMutations() {
		out := mutatedOutput(t, m)
		want := problems(out.Check())
		if len(want) == 0 {
			t.Fatalf("%s: Output.Check found nothing", m.name)
		}
		c := NewCache(nil)
		for _, f := range []float64{0, 0.25, 0.5, 0.75, 1} {
			l := layered(out, f)
			for range 2 {
				if got := problems(c.Check(l)); !slices.Equal(got, want) {
					t.Errorf("%s split at %.2f:\n got %q\nwant %q", m.name, f, got, want)
				}
			}
		}
	}
}
