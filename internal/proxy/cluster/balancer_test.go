package cluster

import (
	"fmt"
	"math"
	"testing"
)

func fakeHosts(n int, weights ...uint32) []weighted {
	out := make([]weighted, n)
	for i := range out {
		w := uint32(1)
		if i < len(weights) {
			w = weights[i]
		}
		out[i] = weighted{h: &host{addr: fmt.Sprintf("10.0.0.%d:80", i+1)}, weight: w}
	}
	return out
}

// within checks that counts follow the expected shares within tol (relative).
func within(t *testing.T, name string, counts map[*host]int, hosts []weighted, total int, tol float64) {
	t.Helper()
	var wsum float64
	for _, h := range hosts {
		wsum += float64(h.weight)
	}
	for _, h := range hosts {
		want := float64(total) * float64(h.weight) / wsum
		if got := float64(counts[h.h]); math.Abs(got-want) > want*tol {
			t.Errorf("%s: host %s got %v picks, want %.0f ±%.0f%%", name, h.h.addr, got, want, tol*100)
		}
	}
}

func TestPolicyDistribution(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      func(hs []weighted) picker
		hash   bool
		tol    float64
		weight []uint32
	}{
		{"round_robin", func(hs []weighted) picker { return newRoundRobin(hs) }, false, 0.001, nil},
		{"round_robin_weighted", func(hs []weighted) picker { return newRoundRobin(hs) }, false, 0.001, []uint32{3, 1, 1, 5}},
		{"random", func(hs []weighted) picker { return newRandom(hs) }, false, 0.1, []uint32{3, 1, 1, 5}},
		{"least_request", func(hs []weighted) picker { return newLeastRequest(hs, 2) }, false, 0.1, nil},
		{"ring_hash", func(hs []weighted) picker { return newRing(hs, 1024, 8<<20) }, true, 0.2, []uint32{1, 1, 2, 2}},
		{"maglev", func(hs []weighted) picker { return newMaglev(hs, 65537) }, true, 0.05, []uint32{1, 1, 2, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := fakeHosts(4, tc.weight...)
			p := tc.p(hs)
			counts := map[*host]int{}
			const n = 40000
			for i := range n {
				counts[p.pick(mix64(uint64(i)), tc.hash)]++
			}
			within(t, tc.name, counts, hs, n, tc.tol)
		})
	}
}

func TestSmoothWeightedRoundRobin(t *testing.T) {
	hs := fakeHosts(2, 3, 1)
	rr := newRoundRobin(hs)
	// Smooth: the heavy host never takes more than 3 in a row and the light
	// one appears once every 4 picks.
	if len(rr.seq) != 4 {
		t.Fatalf("sequence length %d, want 4", len(rr.seq))
	}
	light := 0
	for _, h := range rr.seq {
		if h == hs[1].h {
			light++
		}
	}
	if light != 1 {
		t.Fatalf("light host appears %d times", light)
	}
	if rr.seq[1] == hs[1].h && rr.seq[2] == hs[1].h {
		t.Fatal("not smooth")
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	hs := fakeHosts(2)
	hs[0].h.active.Store(50)
	p := newLeastRequest(hs, 2)
	idle := 0
	for range 1000 {
		if p.pick(0, false) == hs[1].h {
			idle++
		}
	}
	// Two random choices among two hosts include the idle one 3/4 of the time.
	if idle < 650 {
		t.Fatalf("idle host picked %d/1000, want ~750", idle)
	}
}

func TestConsistentHashStableAndMinimalDisruption(t *testing.T) {
	for _, tc := range []struct {
		name string
		mk   func(hs []weighted) picker
		// Share of the remaining hosts' keys allowed to move. The ring is
		// rescaled to its minimum size when a host leaves (as in Envoy),
		// so survivors gain entries and steal about 1/N of the keys.
		tol float64
	}{
		{"ring_hash", func(hs []weighted) picker { return newRing(hs, 1024, 8<<20) }, 0.12},
		{"maglev", func(hs []weighted) picker { return newMaglev(hs, 65537) }, 0.05},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := fakeHosts(10)
			a, b := tc.mk(hs), tc.mk(hs)
			// Removing one host moves only (about) the keys it owned.
			c := tc.mk(hs[:9])
			moved, owned := 0, 0
			const n = 20000
			for i := range n {
				k := mix64(uint64(i) + 12345)
				ha := a.pick(k, true)
				if ha != b.pick(k, true) {
					t.Fatal("same hosts, different pick: not stable")
				}
				if ha != a.pick(k, true) {
					t.Fatal("same key, different pick")
				}
				if ha == hs[9].h {
					owned++
					continue
				}
				if c.pick(k, true) != ha {
					moved++
				}
			}
			if owned == 0 {
				t.Fatal("removed host owned no keys")
			}
			// Keys not owned by the removed host should mostly stay.
			if float64(moved) > tc.tol*float64(n-owned) {
				t.Fatalf("%d of %d keys of remaining hosts moved", moved, n-owned)
			}
		})
	}
}

func TestRingSizeBounds(t *testing.T) {
	r := newRing(fakeHosts(3), 1024, 8<<20)
	if len(r.hashes) < 1024 || len(r.hashes) > 1030 {
		t.Fatalf("ring size %d, want about the minimum 1024", len(r.hashes))
	}
	r = newRing(fakeHosts(3), 16, 32)
	if len(r.hashes) > 33 {
		t.Fatalf("ring size %d exceeds max", len(r.hashes))
	}
}

func BenchmarkPick(b *testing.B) {
	hs := fakeHosts(16)
	for _, tc := range []struct {
		name string
		p    picker
		hash bool
	}{
		{"round_robin", newRoundRobin(hs), false},
		{"least_request", newLeastRequest(hs, 2), false},
		{"random", newRandom(hs), false},
		{"ring_hash", newRing(hs, 1024, 8<<20), true},
		{"maglev", newMaglev(hs, 65537), true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			var k uint64
			for b.Loop() {
				k++
				tc.p.pick(k*0x9e3779b97f4a7c15, tc.hash)
			}
		})
	}
}
