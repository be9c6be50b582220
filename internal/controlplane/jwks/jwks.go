// Package jwks fetches the JSON Web Key Sets that RequestAuthentication
// jwksUri names, for the control plane to inline into proxies' jwt_authn
// config as istiod does (proxies never fetch keys). Key sets are cached and
// refreshed periodically; a failed fetch keeps the last good keys and is
// counted and shown in status. Translation stays pure: it reads the keys
// from the snapshot the server builds.
package jwks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// maxBody bounds a fetched key set.
const maxBody = 1 << 20

// Options configure a Fetcher. The zero value works.
type Options struct {
	Client *http.Client
	Log    *slog.Logger
	// Refresh is how often key sets are fetched again (Istio's default:
	// 20 minutes). Failures retry sooner, backing off from RetryMin.
	Refresh, RetryMin time.Duration
	// Timeout bounds one fetch (default 5s, Istio's jwtRule timeout).
	Timeout time.Duration
	// OnChange is called (not holding locks) when a key set changed.
	OnChange func()
	// Now is the clock (tests).
	Now func() time.Time
}

// Status is one URI's fetch state.
type Status struct {
	URI         string    `json:"uri"`
	HaveKeys    bool      `json:"haveKeys"`
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
	LastError   string    `json:"lastError,omitempty"`
	Successes   int64     `json:"successes"`
	Failures    int64     `json:"failures"`
}

type entry struct {
	keys     string
	have     bool
	next     time.Time // next fetch due
	backoff  time.Duration
	st       Status
	fetching bool
}

// Fetcher is safe for concurrent use.
type Fetcher struct {
	o       Options
	mu      sync.Mutex
	entries map[string]*entry
	wake    chan struct{}
}

// New returns a Fetcher; Run drives its refreshes.
func New(o Options) *Fetcher {
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Refresh <= 0 {
		o.Refresh = 20 * time.Minute
	}
	if o.RetryMin <= 0 {
		o.RetryMin = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Fetcher{o: o, entries: map[string]*entry{}, wake: make(chan struct{}, 1)}
}

// Keys registers uris as wanted (others are forgotten) and returns the
// key sets known for them. A new URI is fetched in the background; when it
// arrives OnChange is called.
func (f *Fetcher) Keys(uris []string) map[string]string {
	f.mu.Lock()
	want := map[string]bool{}
	added := false
	for _, u := range uris {
		want[u] = true
		if _, ok := f.entries[u]; !ok {
			f.entries[u] = &entry{st: Status{URI: u}}
			added = true
		}
	}
	for u := range f.entries {
		if !want[u] {
			delete(f.entries, u)
		}
	}
	out := map[string]string{}
	for u, e := range f.entries {
		if e.have {
			out[u] = e.keys
		}
	}
	f.mu.Unlock()
	if added {
		f.poke()
	}
	return out
}

func (f *Fetcher) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run fetches due key sets until ctx ends.
func (f *Fetcher) Run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		next := f.fetchDue(ctx)
		t.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		case <-t.C:
		}
	}
}

// fetchDue fetches every due entry and returns how long until the next.
func (f *Fetcher) fetchDue(ctx context.Context) time.Duration {
	now := f.o.Now()
	f.mu.Lock()
	var due []string
	for u, e := range f.entries {
		if !e.fetching && !now.Before(e.next) {
			e.fetching = true
			due = append(due, u)
		}
	}
	f.mu.Unlock()
	sort.Strings(due)
	changed := false
	for _, u := range due {
		if f.fetchOne(ctx, u) {
			changed = true
		}
	}
	if changed && f.o.OnChange != nil {
		f.o.OnChange()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	wait := f.o.Refresh
	now = f.o.Now()
	for _, e := range f.entries {
		if d := e.next.Sub(now); d < wait {
			wait = max(d, 10*time.Millisecond)
		}
	}
	return wait
}

// fetchOne fetches uri and records the result; true when its keys changed.
func (f *Fetcher) fetchOne(ctx context.Context, uri string) bool {
	keys, err := f.get(ctx, uri)
	now := f.o.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.entries[uri]
	if !ok {
		return false // forgotten meanwhile
	}
	e.fetching = false
	if err != nil {
		e.st.Failures++
		e.st.LastError = err.Error()
		if e.backoff == 0 {
			e.backoff = f.o.RetryMin
		} else {
			e.backoff = min(2*e.backoff, f.o.Refresh)
		}
		e.next = now.Add(e.backoff)
		f.o.Log.Warn("fetching JWKS failed; last good keys stay in use", "uri", uri, "keys", e.have, "err", err)
		return false
	}
	e.st.Successes++
	e.st.LastSuccess = now
	e.st.LastError = ""
	e.backoff = 0
	e.next = now.Add(f.o.Refresh)
	changed := !e.have || e.keys != keys
	e.keys, e.have = keys, true
	if changed {
		f.o.Log.Info("JWKS fetched", "uri", uri)
	}
	return changed
}

func (f *Fetcher) get(ctx context.Context, uri string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, f.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return "", err
	}
	if req.URL.Scheme != "https" && req.URL.Scheme != "http" {
		return "", fmt.Errorf("unsupported scheme %q", req.URL.Scheme)
	}
	resp, err := f.o.Client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxBody {
		return "", errors.New("key set larger than 1 MiB")
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return "", fmt.Errorf("not a JWKS: %w", err)
	}
	n := 0
	for _, k := range set.Keys {
		if k.Valid() && k.IsPublic() {
			n++
		}
	}
	if n == 0 {
		return "", errors.New("no usable public key in the JWKS")
	}
	return string(b), nil
}

// Status lists every wanted URI, sorted.
func (f *Fetcher) Status() []Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Status, 0, len(f.entries))
	for _, e := range f.entries {
		s := e.st
		s.HaveKeys = e.have
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].URI < out[j].URI })
	return out
}

// WriteMetrics writes Istio's JWKS resolver counters (Prometheus text).
func (f *Fetcher) WriteMetrics(w io.Writer) {
	var ok, fail int64
	for _, s := range f.Status() {
		ok += s.Successes
		fail += s.Failures
	}
	fmt.Fprintf(w, "# TYPE pilot_jwks_resolver_network_fetch_success_total counter\npilot_jwks_resolver_network_fetch_success_total %d\n", ok)
	fmt.Fprintf(w, "# TYPE pilot_jwks_resolver_network_fetch_fail_total counter\npilot_jwks_resolver_network_fetch_fail_total %d\n", fail)
}
