// Package bookinfo holds the checks of Istio's Bookinfo tasks (request
// routing, traffic shifting, fault injection, mutual TLS migration) with
// the tasks' own YAML from examples/tasks, run against any mesh that
// implements Target: the local demo (test/e2e/tasks) and pods on a real
// node (test/e2e/node) run the same checks.
package bookinfo

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// Target is a mesh running Bookinfo, httpbin and curl in the namespace
// the tasks' YAML names ("default").
type Target interface {
	// Apply applies YAML and removes it when t ends.
	Apply(t *testing.T, yaml string)
	// Page fetches /productpage through the ingress gateway as user
	// ("" = anonymous; a user logs in once, as in Istio's doc tests).
	Page(t *testing.T, user string) kit.Response
	// FromCurl makes a GET the way the curl workload's app does.
	FromCurl(t *testing.T, rawURL string, hdr map[string]string) kit.Response
}

// The tasks' YAML, from examples/tasks (the README's tour uses the same files).
var (
	AllV1           = kit.Task("virtual-service-all-v1/virtual-service-all-v1.yaml")
	ReviewsTestV2   = kit.Task("request-routing/virtual-service-reviews-test-v2.yaml")
	RatingsDelay    = kit.Task("fault-injection-delay/virtual-service-ratings-test-delay.yaml")
	RatingsAbort    = kit.Task("fault-injection-abort/virtual-service-ratings-test-abort.yaml")
	Reviews50v3     = kit.Task("traffic-shifting-50-v3/virtual-service-reviews-50-v3.yaml")
	ReviewsV3       = kit.Task("traffic-shifting-v3/virtual-service-reviews-v3.yaml")
	NamespaceSTRICT = kit.Task("mtls-migration-namespace-strict/peer-authentication-namespace-strict.yaml")
)

// Star marks a rating on the page (reviews v2 and v3).
const Star = "glyphicon glyphicon-star"

var servedBy = regexp.MustCompile(`Reviews served by:\s*(?:<[^>]*>\s*)*([a-z0-9-]+)`)

// ReviewsVersion is the reviews version ("v1", "v2", "v3") that served a page.
func ReviewsVersion(body string) string {
	m := servedBy.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	for _, v := range []string{"v1", "v2", "v3"} {
		if strings.Contains(m[1], "reviews-"+v) {
			return v
		}
	}
	return m[1]
}

// PagesAll checks n consecutive pages for user with ok.
func PagesAll(t *testing.T, tg Target, user string, n int, ok func(kit.Response) error) error {
	for i := 0; i < n; i++ {
		r := tg.Page(t, user)
		if r.Status != 200 {
			return fmt.Errorf("productpage as %q: status %d: %.200s", user, r.Status, r.Body)
		}
		if err := ok(r); err != nil {
			return err
		}
	}
	return nil
}

// NoStars fails a page that shows ratings (reviews v2 or v3).
func NoStars(r kit.Response) error {
	if strings.Contains(r.Body, Star) {
		return fmt.Errorf("page shows stars (reviews %s)", ReviewsVersion(r.Body))
	}
	return nil
}

// RequestRouting is Istio's Request Routing task: all traffic to v1, then
// jason to v2 while everyone else stays on v1.
func RequestRouting(t *testing.T, tg Target) {
	tg.Apply(t, AllV1)
	meshtest.Eventually(t, "all traffic to reviews v1", 10*time.Second, func() error {
		return PagesAll(t, tg, "", 10, NoStars)
	})
	tg.Apply(t, ReviewsTestV2)
	meshtest.Eventually(t, "jason routed to reviews v2", 10*time.Second, func() error {
		return PagesAll(t, tg, "jason", 10, func(r kit.Response) error {
			if v := ReviewsVersion(r.Body); v != "v2" || !strings.Contains(r.Body, Star) {
				return fmt.Errorf("jason got reviews %q (stars: %v)", v, strings.Contains(r.Body, Star))
			}
			return nil
		})
	})
	if err := PagesAll(t, tg, "", 10, NoStars); err != nil {
		t.Fatalf("anonymous users must stay on v1: %v", err)
	}
}

// FaultInjection is Istio's Fault Injection task: a 7s ratings delay for
// jason (productpage gives up after about 6s), then an HTTP 500 abort.
func FaultInjection(t *testing.T, tg Target) {
	tg.Apply(t, AllV1)
	tg.Apply(t, ReviewsTestV2)
	meshtest.Eventually(t, "jason on reviews v2", 10*time.Second, func() error {
		return PagesAll(t, tg, "jason", 3, func(r kit.Response) error {
			if v := ReviewsVersion(r.Body); v != "v2" {
				return fmt.Errorf("jason got reviews %q", v)
			}
			return nil
		})
	})

	// Delay: ratings +7s for jason. reviews-v2 waits (10s timeout) but
	// productpage gives up on reviews after 3s and one retry: about 6s.
	tg.Apply(t, RatingsDelay)
	meshtest.Eventually(t, "ratings delay reaches the direct probe", 10*time.Second, func() error {
		r := tg.FromCurl(t, "http://ratings:9080/ratings/0", map[string]string{"end-user": "jason"})
		if r.Status != 200 || r.Elapsed < 6*time.Second {
			return fmt.Errorf("direct ratings call as jason: %d after %v", r.Status, r.Elapsed)
		}
		return nil
	})
	r := tg.Page(t, "jason")
	if !strings.Contains(r.Body, "Sorry, product reviews are currently unavailable for this book.") {
		t.Fatalf("jason with a 7s ratings delay: want the reviews-unavailable error, got status %d: %.300s", r.Status, r.Body)
	}
	t.Logf("jason's page with a 7s ratings delay took %v (Istio: about 6s)", r.Elapsed)
	if r.Elapsed < 5*time.Second || r.Elapsed > 9*time.Second {
		t.Errorf("page took %v, want about 6s (productpage: 3s timeout, 2 attempts)", r.Elapsed)
	}
	if a := tg.Page(t, ""); a.Elapsed > 2*time.Second || !strings.Contains(a.Body, "Book Reviews") || strings.Contains(a.Body, "unavailable") {
		t.Errorf("anonymous page must be unaffected: %v, %.200s", a.Elapsed, a.Body)
	}

	// Abort: HTTP 500 for jason: immediately "Ratings service is currently unavailable".
	tg.Apply(t, RatingsAbort)
	meshtest.Eventually(t, "jason sees ratings unavailable", 10*time.Second, func() error {
		r := tg.Page(t, "jason")
		if !strings.Contains(r.Body, "Ratings service is currently unavailable") {
			return fmt.Errorf("status %d, reviews %s", r.Status, ReviewsVersion(r.Body))
		}
		if r.Elapsed > 2*time.Second {
			return fmt.Errorf("abort page took %v, want immediate", r.Elapsed)
		}
		return nil
	})
	if err := PagesAll(t, tg, "", 5, func(r kit.Response) error {
		if strings.Contains(r.Body, "Ratings service is currently unavailable") {
			return fmt.Errorf("anonymous user sees the ratings error")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	d := tg.FromCurl(t, "http://ratings:9080/ratings/0", map[string]string{"end-user": "jason"})
	if d.Status != 500 || strings.TrimSpace(d.Body) != "fault filter abort" {
		t.Errorf("direct probe: want 500 \"fault filter abort\", got %d %q", d.Status, d.Body)
	}
}

// TrafficShifting is Istio's Traffic Shifting task: 50/50 v1/v3 within
// ±8% over 400 pages, then 100% v3.
func TrafficShifting(t *testing.T, tg Target) {
	tg.Apply(t, AllV1)
	meshtest.Eventually(t, "all traffic to v1", 10*time.Second, func() error { return PagesAll(t, tg, "", 10, NoStars) })
	tg.Apply(t, Reviews50v3)
	meshtest.Eventually(t, "v3 appears", 10*time.Second, func() error {
		for i := 0; i < 20; i++ {
			if ReviewsVersion(tg.Page(t, "").Body) == "v3" {
				return nil
			}
		}
		return fmt.Errorf("no v3 in 20 pages")
	})
	const n = 400
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		r := tg.Page(t, "")
		if r.Status != 200 {
			t.Fatalf("page %d: status %d", i, r.Status)
		}
		counts[ReviewsVersion(r.Body)]++
	}
	t.Logf("50/50 v1/v3 over %d pages: %v", n, counts)
	if counts["v1"]+counts["v3"] != n {
		t.Fatalf("pages not from v1 or v3: %v", counts)
	}
	if frac := float64(counts["v3"]) / n; frac < 0.42 || frac > 0.58 {
		t.Fatalf("v3 share %.3f, want 0.50 ± 0.08", frac)
	}
	tg.Apply(t, ReviewsV3)
	meshtest.Eventually(t, "100% v3", 10*time.Second, func() error {
		return PagesAll(t, tg, "", 20, func(r kit.Response) error {
			if v := ReviewsVersion(r.Body); v != "v3" || !strings.Contains(r.Body, `text-red-500`) && !strings.Contains(r.Body, `color="red"`) {
				return fmt.Errorf("got reviews %q", v)
			}
			return nil
		})
	})
}

// MTLSTarget adds what the Mutual TLS Migration task needs: a client
// outside the mesh and the server side's metrics.
type MTLSTarget interface {
	Target
	// Plain makes a GET to httpbin's path from a client without a sidecar.
	Plain(t *testing.T, path string) kit.Response
	// CurlID is the curl workload's SPIFFE id.
	CurlID() string
	// HTTPBinStats is httpbin's sidecar's Prometheus text.
	HTTPBinStats(t *testing.T) kit.Response
}

// MTLSMigration is Istio's Mutual TLS Migration task: PERMISSIVE serves
// mesh and plaintext clients; the namespace STRICT policy refuses
// plaintext while mesh clients still get 200; httpbin's /headers shows the
// caller's SPIFFE id in XFCC, and the server side's istio_requests_total
// names it as source_principal.
func MTLSMigration(t *testing.T, tg MTLSTarget) {
	meshHeaders := func() error {
		r := tg.FromCurl(t, "http://httpbin:8000/headers", nil)
		if r.Status != 200 {
			return fmt.Errorf("curl → httpbin: %d %s", r.Status, r.Body)
		}
		if !strings.Contains(r.Body, "X-Forwarded-Client-Cert") || !strings.Contains(r.Body, "URI="+tg.CurlID()) {
			return fmt.Errorf("no X-Forwarded-Client-Cert naming %s in %s", tg.CurlID(), r.Body)
		}
		return nil
	}
	meshtest.Eventually(t, "PERMISSIVE: curl reaches httpbin over mTLS", 30*time.Second, meshHeaders)
	meshtest.Eventually(t, "PERMISSIVE: a plaintext client reaches httpbin", 30*time.Second, func() error {
		if r := tg.Plain(t, "/headers"); r.Status != 200 {
			return fmt.Errorf("plaintext client: %d %s", r.Status, r.Body)
		}
		return nil
	})

	tg.Apply(t, NamespaceSTRICT)
	meshtest.Eventually(t, "STRICT: the plaintext client is refused", 30*time.Second, func() error {
		if r := tg.Plain(t, "/headers"); r.Status != -1 {
			return fmt.Errorf("plaintext client got %d", r.Status)
		}
		return nil
	})
	for i := 0; i < 10; i++ {
		if err := meshHeaders(); err != nil {
			t.Fatalf("STRICT: mesh client: %v", err)
		}
	}
	meshtest.Eventually(t, "source_principal on the server side", 30*time.Second, func() error {
		r := tg.HTTPBinStats(t)
		for _, l := range strings.Split(r.Body, "\n") {
			if strings.HasPrefix(l, "istio_requests_total{") && strings.Contains(l, `reporter="destination"`) &&
				strings.Contains(l, `source_principal="`+tg.CurlID()+`"`) && strings.Contains(l, `connection_security_policy="mutual_tls"`) {
				return nil
			}
		}
		return fmt.Errorf("no destination series with source_principal %s (status %d)", tg.CurlID(), r.Status)
	})
}
