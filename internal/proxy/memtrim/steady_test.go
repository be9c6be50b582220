package memtrim

import "testing"

// A steady allocation rate under the threshold is load (a proxy at 1,000
// requests/s allocates about 4.5 MB a second): however much garbage piles
// up, no look trims until the rate falls; then the first quiet look does.
func TestSteadyLoadNeverTrims(t *testing.T) {
	tr := &Trimmer{Threshold: DefaultThreshold}
	tr.Look()
	tr.Trim()
	for i := 0; i < 6; i++ {
		garbage(3 << 20) // a second of load, under Threshold
		if tr.Look() {
			t.Fatalf("look %d: trimmed under steady load (%d B reclaimable, floor %d)", i, Reclaimable(), tr.floor)
		}
	}
	if r := Reclaimable(); r <= tr.floor+DefaultThreshold {
		t.Fatalf("steady load left only %d B reclaimable (floor %d): the test proves nothing", r, tr.floor)
	}
	if !tr.Look() {
		t.Fatalf("idle after steady load with %d B reclaimable: no trim", Reclaimable())
	}
}

// A burst that ends into lighter load (under the threshold, but not idle)
// is trimmed once, at the look where the rate fell, and not again while
// the lighter load goes on.
func TestBurstEndingIntoLightLoadTrimsOnce(t *testing.T) {
	tr := &Trimmer{Threshold: DefaultThreshold}
	tr.Look()
	burst() // 16 MiB
	if tr.Look() {
		t.Fatal("trimmed while allocating 16 MiB a look")
	}
	garbage(1 << 20) // over Threshold/16: light load, not idle
	if !tr.Look() {
		t.Fatalf("rate fell from 16 to 1 MiB a look with %d B reclaimable: no trim", Reclaimable())
	}
	for i := 0; i < 4; i++ {
		garbage(1 << 20)
		if tr.Look() {
			t.Fatalf("look %d: trimmed again under steady light load", i)
		}
	}
}
