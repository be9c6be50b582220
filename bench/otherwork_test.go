package main

import (
	"runtime"
	"testing"
	"time"
)

func TestParseCPULine(t *testing.T) {
	for _, c := range []struct {
		line string
		want uint64
		ok   bool
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice
		{"cpu  100 5 40 9000 7 3 11 2 0 0", 147, true},
		{"cpu0 100 5 40 9000 7 3 11 2 0 0", 0, false},
		{"cpu  100 5 40", 0, false},
		{"cpu  100 x 40 9000 7 3 11 2 0 0", 0, false},
	} {
		got, ok := parseCPULine(c.line)
		if got != c.want || ok != c.ok {
			t.Errorf("%q: %d %v, want %d %v", c.line, got, ok, c.want, c.ok)
		}
	}
}

func TestOtherWorkInRange(t *testing.T) {
	measure := otherWork()
	time.Sleep(200 * time.Millisecond)
	cores, ok := measure(0.2)
	if !ok {
		t.Skip("/proc/stat not readable")
	}
	if cores < 0 || cores > float64(runtime.NumCPU())*1.5 {
		t.Errorf("%.2f cores of other work on a %d-core machine", cores, runtime.NumCPU())
	}
}
