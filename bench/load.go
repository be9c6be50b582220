package main

import (
	"fmt"
	"io"
	"time"

	"fortio.org/fortio/fhttp"
	"fortio.org/fortio/periodic"
)

// scenario is one load shape.
type scenario struct {
	Name     string  `json:"name"`
	QPS      float64 `json:"qps"` // 0: as fast as possible
	Conns    int     `json:"connections"`
	H2C      bool    `json:"h2c"`
	Duration time.Duration
	// Key says which figure compares topologies: "p99" or "qps".
	Key string `json:"key"`
}

// cell is one scenario run against one topology in one round.
type cell struct {
	Scenario string             `json:"scenario"`
	Topology string             `json:"topology"`
	Round    int                `json:"round"`
	Requests int64              `json:"requests"`
	OK       int64              `json:"ok"`
	Errors   int64              `json:"errors"`
	QPS      float64            `json:"qps"`
	AvgMs    float64            `json:"avg_ms"`
	P50Ms    float64            `json:"p50_ms"`
	P90Ms    float64            `json:"p90_ms"`
	P99Ms    float64            `json:"p99_ms"`
	P999Ms   float64            `json:"p99_9_ms"`
	MaxMs    float64            `json:"max_ms"`
	CPUSec   map[string]float64 `json:"cpu_seconds,omitempty"` // per proxy process
	CPUPer1k float64            `json:"cpu_seconds_per_1k_requests,omitempty"`
	// OtherCores is the CPU (in cores) that processes outside the harness
	// used during the measured run: other work on the machine.
	OtherCores *float64      `json:"other_cores,omitempty"`
	Skipped    string        `json:"skipped,omitempty"`
	Codes      map[int]int64 `json:"codes,omitempty"`
}

// runLoad drives url with fortio's periodic runner and HTTP client.
func runLoad(url, host string, s scenario, dur time.Duration) (*cell, error) {
	return runLoadWith(url, host, s, dur, nil)
}

// runLoadWith is runLoad with the HTTP options adjusted (TLS, keep-alive)
// after fortio's defaults are set.
func runLoadWith(url, host string, s scenario, dur time.Duration, tweak func(*fhttp.HTTPOptions)) (*cell, error) {
	o := fhttp.HTTPRunnerOptions{}
	o.Init(url)
	o.RunnerOptions = periodic.RunnerOptions{
		QPS:         s.QPS,
		Duration:    dur,
		NumThreads:  s.Conns,
		Percentiles: []float64{50, 90, 99, 99.9},
		Out:         io.Discard,
	}
	if s.QPS == 0 {
		o.RunnerOptions.QPS = -1 // fortio: negative means maximum speed
	}
	// h2c needs fortio's standard client (its fast client speaks HTTP/1.x
	// only); fortio switches only when H2 is set before Init.
	o.HTTPOptions.H2 = s.H2C
	o.HTTPOptions.DisableFastClient = s.H2C
	o.HTTPOptions.HTTPReqTimeOut = 10 * time.Second
	if host != "" {
		if err := o.HTTPOptions.AddAndValidateExtraHeader("Host: " + host); err != nil {
			return nil, err
		}
	}
	if tweak != nil {
		tweak(&o.HTTPOptions)
	}
	o.AllowInitialErrors = true
	res, err := fhttp.RunHTTPTest(&o)
	if err != nil {
		return nil, fmt.Errorf("fortio: %w", err)
	}
	h := res.DurationHistogram
	c := &cell{Requests: h.Count, QPS: res.ActualQPS, AvgMs: h.Avg * 1000, MaxMs: h.Max * 1000, Codes: map[int]int64{}}
	for code, n := range res.RetCodes {
		c.Codes[code] = n
	}
	c.OK = res.RetCodes[200]
	c.Errors = c.Requests - c.OK
	for _, p := range h.Percentiles {
		v := p.Value * 1000
		switch p.Percentile {
		case 50:
			c.P50Ms = v
		case 90:
			c.P90Ms = v
		case 99:
			c.P99Ms = v
		case 99.9:
			c.P999Ms = v
		}
	}
	return c, nil
}
