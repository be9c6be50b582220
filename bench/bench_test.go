package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/config"
)

// TestMain lets the test binary act as the backend server, as the harness
// binary does, since the harness starts its own executable for it.
func TestMain(m *testing.M) {
	if addr := os.Getenv(serveEnv); addr != "" {
		os.Exit(serveBackend(addr))
	}
	os.Exit(m.Run())
}

// smokeReport runs `bench -smoke` with args and returns its JSON report
// and markdown (one of each must be written) and the run's log.
func smokeReport(t *testing.T, args ...string) (rep *report, md []byte, log string) {
	t.Helper()
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	// Generous: on a loaded 2-core CI machine the smoke run (every
	// topology, the idle proxies, the control plane over SotW and delta)
	// took over 3 minutes.
	const limit = 10 * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if code := run(ctx, append([]string{"-smoke", "-out", out}, args...), &stdout, &stderr); code != 0 {
		if ctx.Err() != nil {
			t.Fatalf("exit %d: the run passed its %v limit\n%s", code, limit, tail(stderr.String()))
		}
		t.Fatalf("exit %d\n%s", code, tail(stderr.String()))
	}
	jsons, _ := filepath.Glob(filepath.Join(out, "*-smoke.json"))
	mds, _ := filepath.Glob(filepath.Join(out, "*-smoke.md"))
	if len(jsons) != 1 || len(mds) != 1 {
		t.Fatalf("want one report, got %v %v", jsons, mds)
	}
	b, err := os.ReadFile(jsons[0])
	if err != nil {
		t.Fatal(err)
	}
	rep = &report{}
	if err := json.Unmarshal(b, rep); err != nil {
		t.Fatal(err)
	}
	md, _ = os.ReadFile(mds[0])
	return rep, md, stderr.String()
}

// TestSmoke runs `bench -smoke` end to end (what `make bench-smoke` and CI
// run) and checks the report is complete; it asserts nothing about speed.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the benchmark harness (about 20 s)")
	}
	rep, md, _ := smokeReport(t)
	if rep.Machine.Cores == 0 || rep.Machine.Go == "" || rep.Commit == "" {
		t.Errorf("machine not described: %+v", rep.Machine)
	}
	avail := map[string]bool{}
	verified := map[string]string{}
	for _, tp := range rep.Topologies {
		avail[tp.Name] = tp.Available
		verified[tp.Name] = tp.Verified
		if !tp.Available && tp.Reason == "" {
			t.Errorf("%s unavailable without a reason", tp.Name)
		} else if !tp.Available {
			t.Logf("%s not measured: %s", tp.Name, tp.Reason) // e.g. a peer not installed (make deps)
		}
	}
	for _, name := range []string{"direct", "nginx", "nginx-tls", "haproxy", "haproxy-tls", "caddy", "weft", "weft-mtls", "weft-authz"} {
		if _, ok := avail[name]; !ok {
			t.Errorf("topology %s missing from the report", name)
		}
	}
	// A secured pair whose security check failed is reported unavailable;
	// when its plaintext twin runs, that is a harness bug, not a skip.
	// Each check must have said what it proved.
	for secured, plain := range map[string]string{"nginx-tls": "nginx", "haproxy-tls": "haproxy", "weft-mtls": "weft", "weft-authz": "weft"} {
		if avail[plain] && !avail[secured] {
			t.Errorf("%s measured but %s not: %s", plain, secured, reasonOf(*rep, secured))
		}
	}
	for name, want := range map[string]string{
		"nginx-tls":   "plaintext, no client certificate and TLS 1.2 refused",
		"haproxy-tls": "plaintext, no client certificate and TLS 1.2 refused",
		"weft-mtls":   `connection_security_policy="mutual_tls" only`,
		"weft":        `connection_security_policy="none" only`,
		"weft-authz":  "10 AuthorizationPolicies enforced (/admin 403, a bad token 401, GET / 200)",
	} {
		if avail[name] && !strings.Contains(verified[name], want) {
			t.Errorf("%s: verified %q, want it to contain %q", name, verified[name], want)
		}
	}
	if !avail["direct"] {
		t.Fatal("direct topology not measured")
	}
	if len(rep.Cells) != len(rep.Scenarios)*countTrue(avail) {
		t.Errorf("%d cells for %d scenarios × %d topologies", len(rep.Cells), len(rep.Scenarios), countTrue(avail))
	}
	for _, c := range rep.Cells {
		if c.Skipped == "" && c.OK == 0 {
			t.Errorf("cell %s/%s has no successful request and no reason", c.Scenario, c.Topology)
		}
		if c.Topology == "direct" && c.Skipped != "" {
			t.Errorf("direct cell %s skipped: %s", c.Scenario, c.Skipped)
		}
	}
	for _, want := range []string{"## Method", "## latency-h1", "## Control plane", "weft-proxy idle memory"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	// Private memory is reported next to RSS: for each measured weft
	// proxy, and for the idle proxy (well under its RSS, which counts the
	// binary's pages).
	for _, tp := range rep.Topologies {
		if tp.Name != "weft" || !tp.Available {
			continue
		}
		for name, rss := range tp.PeakRSSKB {
			if a := tp.PeakAnonKB[name]; a <= 0 || a >= rss {
				t.Errorf("%s %s: private %d kB against peak RSS %d kB", tp.Name, name, a, rss)
			}
		}
	}
	for _, i := range rep.Idle {
		if i.Error == "" && (i.AnonKB <= 0 || i.AnonKB >= i.RSSKB) {
			t.Errorf("idle proxy, %d services: private %d kB against RSS %d kB", i.Services, i.AnonKB, i.RSSKB)
		}
	}
	if len(rep.ControlPlane) == 0 && rep.CPNote == "" {
		t.Error("control plane neither measured nor explained")
	}
	for _, c := range rep.ControlPlane {
		if c.Error == "" && ((c.Connected != c.Proxies && c.Stopped == "") || len(c.ChangeP50) == 0) {
			t.Errorf("control plane result incomplete without an error: %+v", c)
		}
	}
	if !avail["weft"] && !strings.Contains(string(md), "weft: not available: ") {
		t.Error(`weft unavailable but the report lacks "weft: not available: <reason>"`)
	}
}

func reasonOf(rep report, name string) string {
	for _, tp := range rep.Topologies {
		if tp.Name == name {
			return tp.Reason
		}
	}
	return "not in the report"
}

// TestCheckPairTLS: the TLS pairs' check refuses a server side that
// answers without a client certificate, or plaintext, and accepts one
// that requires mutual TLS 1.3 with the pair's CA.
func TestCheckPairTLS(t *testing.T) {
	pki, err := newPairPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(pki.CA)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})
	p := &proc{name: "test", done: make(chan struct{})}
	for _, tc := range []struct {
		name    string
		cfg     *tls.Config // nil: plaintext server
		wantErr string
	}{
		{"mutual TLS 1.3", &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS13}, ""},
		{"client cert optional", &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool, MinVersion: tls.VersionTLS13}, "without a client certificate"},
		{"TLS 1.2 allowed", &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12}, "TLS 1.2"},
		{"plaintext", nil, "not answered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(ok)
			if tc.cfg != nil {
				srv.TLS = tc.cfg
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			addr := strings.TrimPrefix(strings.TrimPrefix(srv.URL, "https://"), "http://")
			_, err := checkPairTLS(context.Background(), addr, pki, p, 500*time.Millisecond)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func countTrue(m map[string]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}

func tail(s string) string {
	if len(s) > 3000 {
		return s[len(s)-3000:]
	}
	return s
}

// TestServicesYAML checks the generated mesh config is valid Istio config
// for Weft's own loader (a broken generator would make the control-plane
// numbers meaningless).
func TestServicesYAML(t *testing.T) {
	rs, err := config.LoadReader("services.yaml", strings.NewReader(servicesYAML("svc", 300)), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 600 {
		t.Fatalf("%d resources, want 600", len(rs))
	}
	for _, r := range rs {
		if errs := config.Validate(r); len(errs) > 0 {
			t.Fatalf("invalid: %v", errs[0])
		}
	}
	rs, err = config.LoadReader("server.yaml", strings.NewReader(serverService), config.Options{})
	if err != nil || len(rs) != 1 {
		t.Fatalf("server service: %v", err)
	}
}

func TestPct(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	tests := []struct {
		p    float64
		want float64
	}{{50, 5}, {90, 9}, {99, 10}, {100, 10}, {0, 1}}
	for _, tc := range tests {
		if got := pct(xs, tc.p); got != tc.want {
			t.Errorf("pct(%v) = %v want %v", tc.p, got, tc.want)
		}
	}
	if pct(nil, 50) != 0 {
		t.Error("empty: want 0")
	}
}

func TestReadStat(t *testing.T) {
	st, err := readStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != os.Getppid() {
		t.Errorf("ppid %d want %d", st.ppid, os.Getppid())
	}
	if statusKB(os.Getpid(), "VmRSS") <= 0 {
		t.Error("VmRSS not read")
	}
}

func TestParseSmokeDefaults(t *testing.T) {
	o, err := parse([]string{"-smoke", "-rounds", "3"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.rounds != 3 || o.latency >= time.Second || len(o.cpProxies) != 1 || o.cpProxies[0] > 100 {
		t.Errorf("smoke defaults wrong or explicit flag overridden: %+v", o)
	}
	o, _ = parse(nil, &bytes.Buffer{})
	if o.cpServices != 1000 || !slices.Equal(o.cpProxies, []int{100, 2000}) || o.rounds != 2 {
		t.Errorf("full defaults: %+v", o)
	}
}
