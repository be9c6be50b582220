package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func keySet(t *testing.T, kid string) string {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: kid}}})
	return string(b)
}

// TestFetcher: first fetch, refresh with rotated keys, a failure keeps the
// last good keys and is counted, recovery; unused URIs are forgotten.
func TestFetcher(t *testing.T) {
	var mu sync.Mutex
	body, status := keySet(t, "k1"), 200
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	defer srv.Close()
	set := func(b string, s int) { mu.Lock(); body, status = b, s; mu.Unlock() }

	var changes atomic.Int32
	f := New(Options{Refresh: 50 * time.Millisecond, RetryMin: 10 * time.Millisecond, OnChange: func() { changes.Add(1) }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.Run(ctx)
	uri := srv.URL + "/jwks"
	if got := f.Keys([]string{uri}); len(got) != 0 {
		t.Fatalf("keys before any fetch: %v", got)
	}
	waitFor(t, func() bool { return strings.Contains(f.Keys([]string{uri})[uri], `"k1"`) })
	if changes.Load() == 0 {
		t.Error("OnChange not called")
	}

	set(keySet(t, "k2"), 200)
	waitFor(t, func() bool { return strings.Contains(f.Keys([]string{uri})[uri], `"k2"`) })

	set("oops", 500)
	waitFor(t, func() bool { return f.Status()[0].Failures >= 2 })
	st := f.Status()[0]
	if !st.HaveKeys || !strings.Contains(f.Keys([]string{uri})[uri], `"k2"`) || st.LastError == "" {
		t.Errorf("failure must keep the last good keys: %+v", st)
	}
	var m strings.Builder
	f.WriteMetrics(&m)
	if !strings.Contains(m.String(), "pilot_jwks_resolver_network_fetch_fail_total") {
		t.Errorf("metrics: %s", m.String())
	}

	set(`{"keys":[]}`, 200) // not usable: still a failure
	before := f.Status()[0].Failures
	waitFor(t, func() bool { return f.Status()[0].Failures > before })
	if !strings.Contains(f.Keys([]string{uri})[uri], `"k2"`) {
		t.Error("an empty key set replaced the last good keys")
	}

	set(keySet(t, "k3"), 200)
	waitFor(t, func() bool {
		return strings.Contains(f.Keys([]string{uri})[uri], `"k3"`) && f.Status()[0].LastError == ""
	})

	f.Keys(nil)
	if len(f.Status()) != 0 {
		t.Error("unused URI not forgotten")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
