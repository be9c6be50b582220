package translate

import (
	"slices"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	"istio.io/api/type/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/node"
)

// TestDestinationRuleMergeSelectors mirrors Istio's
// TestSetDestinationRuleWithWorkloadSelector (pilot/pkg/model/push_context_test.go):
// rules with the same selector merge, a namespace-wide rule whose exportTo
// is a superset of "." merges into each selector rule and also stands on
// its own, and selector rules are never exported.
func TestDestinationRuleMergeSelectors(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	dr := func(name string, at time.Duration, exportTo []string, app string) *networkingv1.DestinationRule {
		d := &networkingv1.DestinationRule{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "test", CreationTimestamp: metav1.NewTime(now.Add(at))},
			Spec:       networking.DestinationRule{Host: "httpbin.org", ExportTo: exportTo},
		}
		if app != "" {
			d.Spec.WorkloadSelector = &v1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": app}}
		}
		return d
	}
	snap := &model.Snapshot{DestinationRules: []*networkingv1.DestinationRule{
		dr("nsRule1", 0, []string{"test2", "."}, "app1"),
		dr("nsRule2", time.Second, []string{"test2", "."}, "app2"),
		dr("nsRule3", time.Second, []string{"test2", "."}, "app2"),
		dr("nsRule4", -time.Second, []string{".", "test2"}, ""),
	}}
	b := newProxyBuilder(snap, &model.Proxy{Meta: &node.Meta{Namespace: "test"}})
	ix := b.destinationRules()
	from := func(rs []*mergedRule) [][]string {
		var out [][]string
		for _, r := range rs {
			out = append(out, r.from)
		}
		return out
	}
	got := from(ix.rulesFor("httpbin.org", "test", "test"))
	want := [][]string{{"test/nsRule1", "test/nsRule4"}, {"test/nsRule2", "test/nsRule3", "test/nsRule4"}, {"test/nsRule4"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("rules for a proxy in test: got %v, want %v", got, want)
	}
	got = from(ix.rulesFor("httpbin.org", "test", "test2"))
	want = [][]string{{"test/nsRule4"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("rules for a proxy in test2: got %v, want %v", got, want)
	}
}
