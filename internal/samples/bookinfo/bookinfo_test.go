package bookinfo

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/samples"
)

// recorder remembers the headers of the last request a service got.
type recorder struct {
	mu   sync.Mutex
	last http.Header
	n    atomic.Int32
}

func (r *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.last = req.Header.Clone()
		r.mu.Unlock()
		r.n.Add(1)
		h.ServeHTTP(w, req)
	})
}

func (r *recorder) header(k string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		return ""
	}
	return r.last.Get(k)
}

type world struct {
	page    *httptest.Server
	ratings *recorder
	reviews *recorder
	details *recorder
}

// newWorld starts details, ratings, reviews (version) and productpage on
// loopback; override replaces a service's handler ("details", "reviews",
// "ratings").
func newWorld(t *testing.T, version string, override map[string]http.Handler) *world {
	t.Helper()
	w := &world{ratings: &recorder{}, reviews: &recorder{}, details: &recorder{}}
	start := func(name string, h http.Handler, rec *recorder) string {
		if o, ok := override[name]; ok {
			h = o
		}
		s := httptest.NewServer(rec.wrap(h))
		t.Cleanup(s.Close)
		return s.URL
	}
	ratingsURL := start("ratings", NewRatings(), w.ratings)
	rv, err := NewReviews(ReviewsConfig{Version: version, RatingsURL: ratingsURL, PodName: "reviews-" + version + "-test"})
	if err != nil {
		t.Fatal(err)
	}
	reviewsURL := start("reviews", rv, w.reviews)
	detailsURL := start("details", NewDetails(), w.details)
	w.page = httptest.NewServer(NewProductPage(ProductPageConfig{DetailsURL: detailsURL, ReviewsURL: reviewsURL, RatingsURL: ratingsURL,
		Client: samples.NewClient(func(*http.Request) (*url.URL, error) { return nil, nil })}))
	t.Cleanup(w.page.Close)
	return w
}

func get(t *testing.T, u string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

const star = "glyphicon glyphicon-star"

func TestProductPageVersions(t *testing.T) {
	tests := []struct {
		version string
		want    []string
		notWant []string
	}{
		{"v1", []string{"<title>Simple Bookstore App</title>", "William Shakespeare", "Book Details", "Book Reviews", "Reviews served by:", "reviews-v1-test", "An extremely entertaining play"}, []string{star, "Error fetching"}},
		{"v2", []string{star, `<font color="black">`, "text-black-500", "reviews-v2-test"}, []string{`color="red"`, RatingsServiceDown}},
		{"v3", []string{star, `<font color="red">`, "text-red-500", "reviews-v3-test"}, []string{`color="black"`}},
	}
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			w := newWorld(t, tc.version, nil)
			code, body, _ := get(t, w.page.URL+"/productpage", nil)
			if code != 200 {
				t.Fatalf("status %d", code)
			}
			for _, s := range tc.want {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			for _, s := range tc.notWant {
				if strings.Contains(body, s) {
					t.Errorf("page has %q", s)
				}
			}
			// Reviewer1 has 5 stars, Reviewer2 4: 9 filled stars.
			if tc.version != "v1" {
				if n := strings.Count(body, `id="`+star+`"`); n != 9 {
					t.Errorf("%d filled stars, want 9", n)
				}
			}
		})
	}
}

func TestFailures(t *testing.T) {
	status := func(code int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(code)
			io.WriteString(w, "RBAC: access denied")
		})
	}
	tests := []struct {
		name     string
		version  string
		override map[string]http.Handler
		want     []string
		notWant  []string
	}{
		{"ratings denied", "v2", map[string]http.Handler{"ratings": status(403)},
			[]string{RatingsServiceDown, "Book Reviews", "Book Details"}, []string{star}},
		{"ratings fault abort", "v3", map[string]http.Handler{"ratings": status(500)}, []string{RatingsServiceDown}, nil},
		{"details denied", "v1", map[string]http.Handler{"details": status(403)},
			[]string{"William Shakespeare", "Error fetching product details!", DetailsUnavailable, "Book Reviews"}, []string{"Book Details"}},
		{"reviews denied", "v2", map[string]http.Handler{"reviews": status(403)},
			[]string{"Error fetching product reviews!", ReviewsUnavailable, "Book Details"}, []string{"Book Reviews", star}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.version, tc.override)
			code, body, _ := get(t, w.page.URL+"/productpage", nil)
			if code != 200 {
				t.Fatalf("status %d", code)
			}
			for _, s := range tc.want {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			for _, s := range tc.notWant {
				if strings.Contains(body, s) {
					t.Errorf("page has %q", s)
				}
			}
		})
	}
}

func TestReviewsRetriedOnce(t *testing.T) {
	w := newWorld(t, "v1", map[string]http.Handler{"reviews": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})})
	get(t, w.page.URL+"/productpage", nil)
	if n := w.reviews.n.Load(); n != ReviewsAttempts {
		t.Fatalf("reviews called %d times, want %d", n, ReviewsAttempts)
	}
	if n := w.details.n.Load(); n != 1 {
		t.Fatalf("details called %d times, want 1", n)
	}
}

// TestReviewsTimeout reproduces the fault-injection task: ratings delayed
// 7 s; reviews v2 waits, productpage gives up after 3 s and once more after
// 3 s, so the page shows the reviews error after about 6 s.
func TestReviewsTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 6 s")
	}
	release := make(chan struct{})
	defer close(release)
	w := newWorld(t, "v2", map[string]http.Handler{"ratings": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(7 * time.Second):
		}
	})})
	start := time.Now()
	_, body, _ := get(t, w.page.URL+"/productpage", map[string]string{"end-user": "jason"})
	took := time.Since(start)
	if !strings.Contains(body, ReviewsUnavailable) {
		t.Errorf("page lacks %q", ReviewsUnavailable)
	}
	if took < 6*time.Second || took > 6500*time.Millisecond {
		t.Errorf("page took %v, want about 6s", took)
	}
}

func TestRatingsTimeoutV3(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 2.5 s")
	}
	w := newWorld(t, "v3", map[string]http.Handler{"ratings": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(4 * time.Second):
		}
	})})
	start := time.Now()
	code, body, _ := get(t, w.page.URL+"/api/v1/products/0/reviews", nil)
	took := time.Since(start)
	if code != 200 || !strings.Contains(body, RatingsServiceDown) {
		t.Fatalf("%d %s", code, body)
	}
	if took < RatingsTimeoutRed || took > RatingsTimeoutRed+time.Second {
		t.Errorf("took %v, want about %v", took, RatingsTimeoutRed)
	}
}

func TestLoginAndPropagation(t *testing.T) {
	w := newWorld(t, "v2", nil)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(w.page.URL+"/login", url.Values{"username": {"jason"}, "passwd": {"password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/productpage" {
		t.Fatalf("login: %d location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == SessionCookie {
			session = ck
		}
	}
	if session == nil {
		t.Fatal("no session cookie")
	}
	hdr := map[string]string{
		"Cookie":       SessionCookie + "=" + session.Value,
		"X-Request-Id": "req-1",
		"Traceparent":  "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"X-B3-Traceid": "80f198ee56343ba864fe8b2a57d3eff7",
		"B3":           "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
	}
	_, body, _ := get(t, w.page.URL+"/productpage", hdr)
	if !strings.Contains(body, "jason ( ") {
		t.Error("page does not show the signed-in user")
	}
	for _, rec := range []*recorder{w.reviews, w.ratings} {
		if got := rec.header("end-user"); got != "jason" {
			t.Errorf("end-user = %q, want jason", got)
		}
		for k, v := range hdr {
			if k == "Cookie" {
				continue
			}
			if got := rec.header(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
	}
	// A forged cookie is not a login.
	_, body, _ = get(t, w.page.URL+"/productpage", map[string]string{"Cookie": SessionCookie + "=amFzb24.AAAA"})
	if strings.Contains(body, "jason") || w.reviews.header("end-user") != "" {
		t.Error("forged session cookie accepted")
	}
	// The end-user header alone also works (tests skip the login).
	get(t, w.page.URL+"/productpage", map[string]string{"end-user": "jason"})
	if w.ratings.header("end-user") != "jason" {
		t.Error("end-user header not forwarded")
	}
	code, _, h := get(t, w.page.URL+"/logout", nil)
	if code != http.StatusFound || !strings.Contains(h.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout: %d %q", code, h.Get("Set-Cookie"))
	}
}

func TestAPI(t *testing.T) {
	w := newWorld(t, "v3", nil)
	tests := []struct {
		path string
		code int
		want string
	}{
		{"/api/v1/products", 200, `"title":"The Comedy of Errors"`},
		{"/api/v1/products/0", 200, `"author":"William Shakespeare"`},
		{"/api/v1/products/0/reviews", 200, `"color":"red"`},
		{"/api/v1/products/0/ratings", 200, `"Reviewer1":5`},
		{"/api/v1/products/x", 400, "numeric"},
		{"/api/v1/products/-1/reviews", 400, "numeric"},
		{"/health", 200, "Product page is healthy"},
		{"/login", 200, `name="username"`},
		{"/", 200, "/productpage"},
		{"/static/x", 404, ""},
	}
	for _, tc := range tests {
		code, body, _ := get(t, w.page.URL+tc.path, nil)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.path, code, body, tc.code, tc.want)
		}
	}
}

func TestServices(t *testing.T) {
	rv, _ := NewReviews(ReviewsConfig{Version: "v1"})
	tests := []struct {
		name string
		h    http.Handler
		path string
		code int
		want string
	}{
		{"details", NewDetails(), "/details/0", 200, `"ISBN-13":"123-1234567890"`},
		{"details bad id", NewDetails(), "/details/abc", 400, "numeric"},
		{"details health", NewDetails(), "/health", 200, "Details is healthy"},
		{"ratings", NewRatings(), "/ratings/0", 200, `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`},
		{"ratings bad id", NewRatings(), "/ratings/%00", 400, "numeric"},
		{"ratings health", NewRatings(), "/health", 200, "Ratings is healthy"},
		{"reviews v1", rv, "/reviews/0", 200, `"id":"0"`},
		{"reviews health", rv, "/health", 200, "Reviews is healthy"},
	}
	for _, tc := range tests {
		s := httptest.NewServer(tc.h)
		code, body, _ := get(t, s.URL+tc.path, nil)
		s.Close()
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.name, code, body, tc.code, tc.want)
		}
	}
	var r Reviews
	s := httptest.NewServer(rv)
	_, body, _ := get(t, s.URL+"/reviews/0", nil)
	s.Close()
	if err := json.Unmarshal([]byte(body), &r); err != nil || len(r.Reviews) != 2 || r.Reviews[0].Rating != nil {
		t.Errorf("v1 reviews must have no ratings: %s", body)
	}
	if _, err := NewReviews(ReviewsConfig{Version: "v4"}); err == nil {
		t.Error("NewReviews(v4): want error")
	}
}
