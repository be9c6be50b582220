// Package bookinfo is Istio's Bookinfo sample rebuilt in Go: productpage
// (HTML and JSON API) calls details and reviews; reviews v2 and v3 call
// ratings. The visible strings, timeouts and retries are the originals',
// because Istio's tasks observe them: productpage gives reviews 3 s and one
// retry (the fault-injection task's "about 6 seconds"), reviews v2 gives
// ratings 10 s and draws black stars, v3 gives 2.5 s and draws red ones.
// Every hop forwards the request id, tracing and identity headers
// (samples.Propagate), so header-based routing on end-user works.
package bookinfo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/weftmesh/weft/internal/samples"
)

// Timeouts of the original apps' outbound calls.
const (
	DetailsTimeout  = 3 * time.Second
	ReviewsTimeout  = 3 * time.Second
	ReviewsAttempts = 2 // productpage retries reviews once
	RatingsTimeout  = 3 * time.Second
	// Reviews → ratings: v2 (black stars) waits 10 s, v3 (red) 2.5 s.
	RatingsTimeoutBlack = 10 * time.Second
	RatingsTimeoutRed   = 2500 * time.Millisecond
)

// Default service URLs, called by name as in Kubernetes.
const (
	DefaultDetailsURL = "http://details:9080"
	DefaultReviewsURL = "http://reviews:9080"
	DefaultRatingsURL = "http://ratings:9080"
)

// Error texts the tasks look for.
const (
	ReviewsUnavailable = "Sorry, product reviews are currently unavailable for this book."
	DetailsUnavailable = "Sorry, product details are currently unavailable for this book."
	RatingsUnavailable = "Sorry, product ratings are currently unavailable for this book."
	RatingsServiceDown = "Ratings service is currently unavailable"
)

// Details is the book details record the details service serves.
type Details struct {
	ID        int    `json:"id"`
	Author    string `json:"author"`
	Year      int    `json:"year"`
	Type      string `json:"type"`
	Pages     int    `json:"pages"`
	Publisher string `json:"publisher"`
	Language  string `json:"language"`
	ISBN10    string `json:"ISBN-10"`
	ISBN13    string `json:"ISBN-13"`
}

func bookDetails(id int) Details {
	return Details{ID: id, Author: "William Shakespeare", Year: 1595, Type: "paperback", Pages: 200,
		Publisher: "PublisherA", Language: "English", ISBN10: "1234567890", ISBN13: "123-1234567890"}
}

// Ratings is the ratings service's answer.
type Ratings struct {
	ID      int            `json:"id"`
	Ratings map[string]int `json:"ratings"`
}

// Rating is one review's rating: stars and colour, or an error.
type Rating struct {
	Stars int    `json:"stars,omitempty"`
	Color string `json:"color,omitempty"`
	Error string `json:"error,omitempty"`
}

// Review is one review of the book.
type Review struct {
	Reviewer string  `json:"reviewer"`
	Text     string  `json:"text"`
	Rating   *Rating `json:"rating,omitempty"`
}

// Reviews is the reviews service's answer. The id is a string, as in the
// original Java service.
type Reviews struct {
	ID          string   `json:"id"`
	PodName     string   `json:"podname"`
	ClusterName string   `json:"clustername"`
	Reviews     []Review `json:"reviews"`
}

// productID parses the {id} path segment.
func productID(r *http.Request) (int, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	return id, err == nil && id >= 0
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}

// fetch GETs url with the headers propagated from in and decodes a 200 JSON
// answer into out. It returns the status (0 when no response arrived).
func fetch(ctx context.Context, c *http.Client, url string, in http.Header, extra map[string]string, timeout time.Duration, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	samples.Propagate(req.Header, in)
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return resp.StatusCode, fmt.Errorf("decoding %s: %w", url, err)
	}
	return resp.StatusCode, nil
}

func health(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": name + " is healthy"})
	}
}
