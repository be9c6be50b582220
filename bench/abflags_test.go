package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestScenariosFlag(t *testing.T) {
	o, err := parse(nil, &bytes.Buffer{})
	if err != nil || len(scenarios(o)) != 5 {
		t.Fatalf("default: %v, %d scenarios", err, len(scenarios(o)))
	}
	o, err = parse([]string{"-scenarios", "tail-h1-200c,latency-h1"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range scenarios(o) {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"latency-h1", "tail-h1-200c"}) {
		t.Errorf("scenarios %v", names)
	}
	if _, err := parse([]string{"-scenarios", "latency-h3"}, &bytes.Buffer{}); err == nil {
		t.Error("unknown scenario accepted")
	}
}

func TestWeftEnvFlags(t *testing.T) {
	o, err := parse([]string{"-weft-env", "GODEBUG=gctrace=1", "-alt-env", "GOGC=200  GOMAXPROCS=1"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.weftEnv, []string{"GODEBUG=gctrace=1"}) || !slices.Equal(o.altEnv, []string{"GOGC=200", "GOMAXPROCS=1"}) {
		t.Errorf("weft env %q, alt env %q", o.weftEnv, o.altEnv)
	}
	for _, bad := range []string{"GOGC", "=1"} {
		if _, err := parse([]string{"-alt-env", bad}, &bytes.Buffer{}); err == nil {
			t.Errorf("-alt-env %q accepted", bad)
		}
	}
}

// weft-alt runs beside weft in one run, its proxies with -weft-env and
// -alt-env (gctrace in their logs proves the environment reached them);
// every measured cell says how much other work the machine did meanwhile.
func TestWeftAltSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the benchmark harness")
	}
	keep := t.TempDir()
	t.Setenv("TMPDIR", keep)
	rep, md, _ := smokeReport(t, "-parts", "load", "-topologies", "weft,weft-alt", "-scenarios", "latency-h1",
		"-keep", "-weft-env", "GODEBUG=gctrace=1", "-alt-env", "GOGC=200")
	avail := map[string]bool{}
	for _, tp := range rep.Topologies {
		avail[tp.Name] = tp.Available
	}
	if !avail["weft"] {
		t.Skip("weft not available (make build)")
	}
	if !avail["weft-alt"] {
		t.Fatalf("weft-alt not measured beside weft: %+v", rep.Topologies)
	}
	for _, c := range rep.Cells {
		if c.Skipped == "" && c.OtherCores == nil {
			t.Errorf("cell %s/%s: other work not measured", c.Scenario, c.Topology)
		}
	}
	if !strings.Contains(string(md), "Other work on the machine during these cells") {
		t.Error("report does not say how busy the machine was")
	}
	logs, _ := filepath.Glob(filepath.Join(keep, "weft-bench-*", "weft-alt", "weft-proxy-*.log"))
	if len(logs) != 2 {
		t.Fatalf("weft-alt proxy logs: %v", logs)
	}
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		if !strings.Contains(string(b), "gc 1 @") {
			t.Errorf("%s: no gctrace line: -weft-env did not reach the proxy", l)
		}
	}
}
