package translate

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
)

// Istio's retry conversion (pilot route/retry): the default policy retries
// no status code since 1.24, a consistent-hash route keeps its host, and the
// mesh's defaultHttpRetryPolicy replaces the built-in default.
func TestRetryPolicyAsIstio(t *testing.T) {
	b := &builder{mesh: &meshv1alpha1.MeshConfig{}}

	def := b.retryPolicy(nil, false)
	if def.GetRetryOn() != "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes" ||
		len(def.GetRetriableStatusCodes()) != 0 || def.GetNumRetries().GetValue() != 2 ||
		len(def.GetRetryHostPredicate()) != 1 || def.GetHostSelectionRetryMaxAttempts() != 5 {
		t.Fatalf("default policy: %v", def)
	}
	if h := b.retryPolicy(nil, true); len(h.GetRetryHostPredicate()) != 0 || h.GetHostSelectionRetryMaxAttempts() != 5 {
		t.Fatalf("consistent-hash default keeps the previous-hosts predicate: %v", h)
	}
	if p := b.retryPolicy(&networking.HTTPRetry{Attempts: 0}, false); p != nil {
		t.Fatalf("attempts 0 must disable retries, got %v", p)
	}

	in := &networking.HTTPRetry{Attempts: 3, RetryOn: "gateway-error, 503,connect-failure", PerTryTimeout: durationpb.New(2 * time.Second),
		RetryIgnorePreviousHosts: wrapperspb.Bool(true), Backoff: durationpb.New(10 * time.Millisecond)}
	p := b.retryPolicy(in, true)
	if p.GetRetryOn() != "gateway-error,connect-failure,retriable-status-codes" || len(p.GetRetriableStatusCodes()) != 1 ||
		p.GetRetriableStatusCodes()[0] != 503 || p.GetNumRetries().GetValue() != 3 ||
		p.GetPerTryTimeout().AsDuration() != 2*time.Second || p.GetRetryBackOff().GetBaseInterval().AsDuration() != 10*time.Millisecond {
		t.Fatalf("explicit policy: %v", p)
	}
	if len(p.GetRetryHostPredicate()) != 1 {
		t.Fatalf("retryIgnorePreviousHosts true must add the predicate even with a hash: %v", p)
	}
	in.RetryIgnorePreviousHosts = wrapperspb.Bool(false)
	if p := b.retryPolicy(in, false); len(p.GetRetryHostPredicate()) != 0 || p.GetHostSelectionRetryMaxAttempts() != 5 {
		t.Fatalf("retryIgnorePreviousHosts false: %v", p)
	}

	b.mesh.DefaultHttpRetryPolicy = &networking.HTTPRetry{Attempts: 5, RetryOn: "5xx"}
	if p := b.retryPolicy(nil, false); p.GetNumRetries().GetValue() != 5 || p.GetRetryOn() != "5xx" {
		t.Fatalf("mesh defaultHttpRetryPolicy not applied: %v", p)
	}
	b.mesh.DefaultHttpRetryPolicy = &networking.HTTPRetry{Attempts: 0}
	if p := b.retryPolicy(nil, false); p != nil {
		t.Fatalf("mesh defaultHttpRetryPolicy with attempts 0 must disable retries: %v", p)
	}
}
