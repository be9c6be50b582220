package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// A latency cell measures the machine: on 2 cores, other work (builds,
// tests) lengthens the tail of every topology, and which cells it meets
// is luck. Each cell therefore records how many cores processes outside
// the harness used while it ran, so a report says how quiet its machine
// was and a reader can tell a slow cell from a busy one.

// machineTicks is the CPU the whole machine spent outside interrupt
// handlers, in USER_HZ ticks, from /proc/stat's first line (user nice
// system ... steal; idle, iowait, irq and softirq left out: softirq is
// mostly the loopback traffic the bench itself makes, and the kernel
// charges it to no process).
func machineTicks() (uint64, bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, false
	}
	return parseCPULine(sc.Text())
}

// parseCPULine sums user, nice, system and steal of a /proc/stat "cpu" line.
func parseCPULine(line string) (uint64, bool) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, false
	}
	var busy uint64
	for _, i := range []int{1, 2, 3, 8} { // user nice system steal
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, false
		}
		busy += v
	}
	return busy, true
}

// harnessTicks is the CPU of the harness (fortio runs in it) and every
// process it started (backend, proxies, control planes).
func harnessTicks() uint64 {
	var t uint64
	for _, pid := range tree(os.Getpid()) {
		if st, err := readStat(pid); err == nil {
			t += st.utime + st.stime
		}
	}
	return t
}

// otherWork measures the cores used outside the harness between start
// and the call of the function it returns; ok is false when /proc/stat
// cannot be read.
func otherWork() func(seconds float64) (cores float64, ok bool) {
	m0, ok0 := machineTicks()
	h0 := harnessTicks()
	return func(seconds float64) (float64, bool) {
		m1, ok1 := machineTicks()
		h1 := harnessTicks()
		if !ok0 || !ok1 || seconds <= 0 {
			return 0, false
		}
		other := float64(m1-m0) - float64(h1-h0)
		return max(other, 0) / clockTicks / seconds, true
	}
}
