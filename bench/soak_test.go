package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSoakGrowth(t *testing.T) {
	s := func(at time.Duration, kb int64) soakSample {
		return soakSample{At: at, RSSKB: map[string]int64{"p": kb}}
	}
	samples := []soakSample{s(0, 10000), s(10*time.Second, 30000), s(20*time.Second, 20000),
		s(30*time.Second, 20000), s(40*time.Second, 21000), s(50*time.Second, 22000), s(60*time.Second, 23000)}
	got := soakGrowth("p", samples, 20*time.Second)
	if got.WarmKB != 20000 || got.FinalKB != 22000 || got.PeakKB != 30000 || !got.OK {
		t.Errorf("got %+v", got)
	}
	if g := got.Growth; g < 0.099 || g > 0.101 {
		t.Errorf("growth %v, want 0.10", g)
	}
	// A leak: 20 -> 30 MB after warm-up.
	samples = append(samples, s(70*time.Second, 30000), s(80*time.Second, 30000), s(90*time.Second, 30000))
	if got := soakGrowth("p", samples, 20*time.Second); got.OK || got.Growth < 0.49 {
		t.Errorf("a 50 %% growth passed: %+v", got)
	}
	if got := soakGrowth("p", samples, time.Hour); got.OK || got.WarmKB != 0 {
		t.Errorf("no sample after warm-up must not pass: %+v", got)
	}
}

func TestSoakTiming(t *testing.T) {
	for _, tc := range []struct{ d, interval, warmup time.Duration }{
		{10 * time.Minute, 10 * time.Second, time.Minute},
		{2 * time.Minute, 10 * time.Second, 30 * time.Second},
		{6 * time.Second, time.Second, 1500 * time.Millisecond},
	} {
		i, w := soakTiming(tc.d)
		if i != tc.interval || w != tc.warmup {
			t.Errorf("%v: interval %v warmup %v, want %v %v", tc.d, i, w, tc.interval, tc.warmup)
		}
	}
}

// TestSoakSmoke runs a few seconds of the soak end to end against the real
// sidecar pair: the report has samples for both proxies and no errors.
func TestSoakSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the Weft pair (about 15 s)")
	}
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := run(ctx, []string{"-smoke", "-soak", "6s", "-out", out}, &stdout, &stderr)
	jsons, _ := filepath.Glob(filepath.Join(out, "*-soak.json"))
	if len(jsons) != 1 {
		t.Fatalf("exit %d, no soak report\n%s\n%s", code, stdout.String(), tail(stderr.String()))
	}
	b, err := os.ReadFile(jsons[0])
	if err != nil {
		t.Fatal(err)
	}
	var rep soakReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Error != "" || rep.Load == nil || rep.Load.OK == 0 || rep.Load.Errors != 0 {
		t.Fatalf("soak failed: %+v\n%s", rep, tail(stderr.String()))
	}
	if len(rep.Proxies) != 2 || len(rep.Samples) < 5 {
		t.Fatalf("want 2 proxies and >= 5 samples: %+v", rep)
	}
	for _, p := range rep.Proxies {
		if p.WarmKB <= 0 || p.FinalKB <= 0 || p.HWMKB < p.PeakKB {
			t.Errorf("proxy %s: %+v", p.Name, p)
		}
	}
}
