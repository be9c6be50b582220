package tasks

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

const star = "glyphicon glyphicon-star"

// The tasks' YAML, from examples/tasks (the README's tour uses the same files).
var (
	allV1         = kit.Task("virtual-service-all-v1/virtual-service-all-v1.yaml")
	reviewsTestV2 = kit.Task("request-routing/virtual-service-reviews-test-v2.yaml")
	ratingsDelay  = kit.Task("fault-injection-delay/virtual-service-ratings-test-delay.yaml")
	ratingsAbort  = kit.Task("fault-injection-abort/virtual-service-ratings-test-abort.yaml")
	reviews50v3   = kit.Task("traffic-shifting-50-v3/virtual-service-reviews-50-v3.yaml")
	reviewsV3     = kit.Task("traffic-shifting-v3/virtual-service-reviews-v3.yaml")
)

var servedBy = regexp.MustCompile(`Reviews served by:\s*(?:<[^>]*>\s*)*([a-z0-9-]+)`)

func reviewsVersion(body string) string {
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

// noStarsFor asserts n consecutive pages for user show no stars.
func pagesAll(t *testing.T, user string, n int, ok func(kit.Response) error) error {
	for i := 0; i < n; i++ {
		r := productpage(t, user)
		if r.Status != 200 {
			return fmt.Errorf("productpage as %q: status %d: %.200s", user, r.Status, r.Body)
		}
		if err := ok(r); err != nil {
			return err
		}
	}
	return nil
}

func noStars(r kit.Response) error {
	if strings.Contains(r.Body, star) {
		return fmt.Errorf("page shows stars (reviews %s)", reviewsVersion(r.Body))
	}
	return nil
}

// TM-01 Request Routing.
func TestRequestRouting(t *testing.T) {
	mesh(t)
	weft.Apply(t, allV1)
	meshtest.Eventually(t, "all traffic to reviews v1", 10*time.Second, func() error {
		return pagesAll(t, "", 10, noStars)
	})
	weft.Apply(t, reviewsTestV2)
	meshtest.Eventually(t, "jason routed to reviews v2", 10*time.Second, func() error {
		return pagesAll(t, "jason", 10, func(r kit.Response) error {
			if v := reviewsVersion(r.Body); v != "v2" || !strings.Contains(r.Body, star) {
				return fmt.Errorf("jason got reviews %q (stars: %v)", v, strings.Contains(r.Body, star))
			}
			return nil
		})
	})
	if err := pagesAll(t, "", 10, noStars); err != nil {
		t.Fatalf("anonymous users must stay on v1: %v", err)
	}
}

// TM-02 Fault Injection.
func TestFaultInjection(t *testing.T) {
	m := mesh(t)
	weft.Apply(t, allV1)
	weft.Apply(t, reviewsTestV2)
	meshtest.Eventually(t, "jason on reviews v2", 10*time.Second, func() error {
		return pagesAll(t, "jason", 3, func(r kit.Response) error {
			if v := reviewsVersion(r.Body); v != "v2" {
				return fmt.Errorf("jason got reviews %q", v)
			}
			return nil
		})
	})

	// Delay: ratings +7s for jason. reviews-v2 waits (10s timeout) but
	// productpage gives up on reviews after 3s and one retry: about 6s.
	weft.Apply(t, ratingsDelay)
	meshtest.Eventually(t, "ratings delay reaches the direct probe", 10*time.Second, func() error {
		r := fromWorkload(t, m, "curl", "http://ratings:9080/ratings/0", map[string]string{"end-user": "jason"})
		if r.Status != 200 || r.Elapsed < 6*time.Second {
			return fmt.Errorf("direct ratings call as jason: %d after %v", r.Status, r.Elapsed)
		}
		return nil
	})
	r := productpage(t, "jason")
	if !strings.Contains(r.Body, "Sorry, product reviews are currently unavailable for this book.") {
		t.Fatalf("jason with a 7s ratings delay: want the reviews-unavailable error, got status %d: %.300s", r.Status, r.Body)
	}
	t.Logf("jason's page with a 7s ratings delay took %v (Istio: about 6s)", r.Elapsed)
	if r.Elapsed < 5*time.Second || r.Elapsed > 9*time.Second {
		t.Errorf("page took %v, want about 6s (productpage: 3s timeout, 2 attempts)", r.Elapsed)
	}
	if a := productpage(t, ""); a.Elapsed > 2*time.Second || !strings.Contains(a.Body, "Book Reviews") || strings.Contains(a.Body, "unavailable") {
		t.Errorf("anonymous page must be unaffected: %v, %.200s", a.Elapsed, a.Body)
	}

	// Abort: HTTP 500 for jason: immediately "Ratings service is currently unavailable".
	weft.Apply(t, ratingsAbort)
	meshtest.Eventually(t, "jason sees ratings unavailable", 10*time.Second, func() error {
		r := productpage(t, "jason")
		if !strings.Contains(r.Body, "Ratings service is currently unavailable") {
			return fmt.Errorf("status %d, reviews %s", r.Status, reviewsVersion(r.Body))
		}
		if r.Elapsed > 2*time.Second {
			return fmt.Errorf("abort page took %v, want immediate", r.Elapsed)
		}
		return nil
	})
	if err := pagesAll(t, "", 5, func(r kit.Response) error {
		if strings.Contains(r.Body, "Ratings service is currently unavailable") {
			return fmt.Errorf("anonymous user sees the ratings error")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	d := fromWorkload(t, m, "curl", "http://ratings:9080/ratings/0", map[string]string{"end-user": "jason"})
	if d.Status != 500 || strings.TrimSpace(d.Body) != "fault filter abort" {
		t.Errorf("direct probe: want 500 \"fault filter abort\", got %d %q", d.Status, d.Body)
	}
}

// TM-03 Traffic Shifting: 50/50 v1/v3 within ±8% over 400 pages, then 100% v3.
func TestTrafficShifting(t *testing.T) {
	mesh(t)
	weft.Apply(t, allV1)
	meshtest.Eventually(t, "all traffic to v1", 10*time.Second, func() error { return pagesAll(t, "", 10, noStars) })
	weft.Apply(t, reviews50v3)
	meshtest.Eventually(t, "v3 appears", 10*time.Second, func() error {
		for i := 0; i < 20; i++ {
			if reviewsVersion(productpage(t, "").Body) == "v3" {
				return nil
			}
		}
		return fmt.Errorf("no v3 in 20 pages")
	})
	const n = 400
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		r := productpage(t, "")
		if r.Status != 200 {
			t.Fatalf("page %d: status %d", i, r.Status)
		}
		counts[reviewsVersion(r.Body)]++
	}
	t.Logf("50/50 v1/v3 over %d pages: %v", n, counts)
	if counts["v1"]+counts["v3"] != n {
		t.Fatalf("pages not from v1 or v3: %v", counts)
	}
	if frac := float64(counts["v3"]) / n; frac < 0.42 || frac > 0.58 {
		t.Fatalf("v3 share %.3f, want 0.50 ± 0.08", frac)
	}
	weft.Apply(t, reviewsV3)
	meshtest.Eventually(t, "100% v3", 10*time.Second, func() error {
		return pagesAll(t, "", 20, func(r kit.Response) error {
			if v := reviewsVersion(r.Body); v != "v3" || !strings.Contains(r.Body, `text-red-500`) && !strings.Contains(r.Body, `color="red"`) {
				return fmt.Errorf("got reviews %q", v)
			}
			return nil
		})
	})
}
