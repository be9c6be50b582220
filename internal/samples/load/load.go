// Package load is a small load generator for sample clients, standing in
// for `fortio load` in Istio's circuit-breaking task: C connections (one
// HTTP/1.1 connection each), N requests in total or for a duration, at a
// fixed rate or as fast as possible, then a summary whose "Code 200 : 17
// (85.0 %)" lines read like fortio's, which is what the task checks.
package load

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Options of a run.
type Options struct {
	URL         string
	Connections int           // -c, default 4
	QPS         float64       // total rate; 0 = as fast as possible
	Requests    int           // -n; 0 = run for Duration
	Duration    time.Duration // -t, when Requests is 0 (default 5s)
	Headers     http.Header
	Host        string
	Proxy       string // host:port ("" = HTTP_PROXY from the environment)
	Timeout     time.Duration
}

// Result summarises a run.
type Result struct {
	Codes    map[int]int // status → count; -1 = transport error
	Requests int
	Elapsed  time.Duration
	Avg      time.Duration
	P50, P90 time.Duration
	P99, Max time.Duration
}

// Run sends the load and returns the summary.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Connections <= 0 {
		o.Connections = 4
	}
	if o.Requests == 0 && o.Duration == 0 {
		o.Duration = 5 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	proxy := http.ProxyFromEnvironment
	if o.Proxy != "" {
		pu, err := url.Parse("http://" + o.Proxy)
		if err != nil {
			return nil, fmt.Errorf("bad proxy %q: %w", o.Proxy, err)
		}
		proxy = http.ProxyURL(pu)
	}
	if _, err := url.Parse(o.URL); err != nil {
		return nil, err
	}
	if o.Duration > 0 && o.Requests == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	var (
		mu      sync.Mutex
		codes   = map[int]int{}
		lat     []time.Duration
		issued  atomic.Int64
		start   = time.Now()
		wg      sync.WaitGroup
		perConn = o.QPS / float64(o.Connections)
	)
	for c := 0; c < o.Connections; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{
				Timeout: o.Timeout,
				Transport: &http.Transport{Proxy: proxy, MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1,
					DialContext: (&net.Dialer{Timeout: o.Timeout}).DialContext},
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
			defer client.CloseIdleConnections()
			next := time.Now()
			for ctx.Err() == nil {
				if o.Requests > 0 && issued.Add(1) > int64(o.Requests) {
					return
				}
				if perConn > 0 {
					next = next.Add(time.Duration(float64(time.Second) / perConn))
					if d := time.Until(next); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done():
							return
						}
					}
				}
				code, took := one(ctx, client, o)
				if code == 0 { // cancelled at the end of the run
					return
				}
				mu.Lock()
				codes[code]++
				lat = append(lat, took)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r := &Result{Codes: codes, Elapsed: time.Since(start)}
	for _, n := range codes {
		r.Requests += n
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	r.P50, r.P90, r.P99 = q(0.5), q(0.9), q(0.99)
	if len(lat) > 0 {
		r.Max = lat[len(lat)-1]
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		r.Avg = sum / time.Duration(len(lat))
	}
	return r, nil
}

// one makes a request: its status (-1 on a transport error, 0 when the run
// ended under it) and duration.
func one(ctx context.Context, c *http.Client, o Options) (int, time.Duration) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
	if err != nil {
		return -1, 0
	}
	for k, v := range o.Headers {
		req.Header[k] = v
	}
	if o.Host != "" {
		req.Host = o.Host
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, 0
		}
		return -1, time.Since(start)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

// Print writes the summary in fortio's words.
func (r *Result) Print(w io.Writer) {
	qps := 0.0
	if r.Elapsed > 0 {
		qps = float64(r.Requests) / r.Elapsed.Seconds()
	}
	fmt.Fprintf(w, "All done %d calls (plus 0 warmup) %.3f ms avg, %.1f qps\n", r.Requests, float64(r.Avg.Microseconds())/1000, qps)
	fmt.Fprintf(w, "# target 50%% %.6f\n# target 90%% %.6f\n# target 99%% %.6f\n# max %.6f\n",
		r.P50.Seconds(), r.P90.Seconds(), r.P99.Seconds(), r.Max.Seconds())
	codes := make([]int, 0, len(r.Codes))
	for c := range r.Codes {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(w, "Code %3d : %d (%.1f %%)\n", c, r.Codes[c], 100*float64(r.Codes[c])/float64(max(r.Requests, 1)))
	}
}
