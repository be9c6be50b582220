package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/cli"
	"github.com/weftmesh/weft/internal/controlplane/apiauth"
	"github.com/weftmesh/weft/internal/controlplane/server"
	"github.com/weftmesh/weft/internal/node"
	"github.com/weftmesh/weft/internal/promtext"
)

// syncBuf collects the server's log lines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startWith runs a control plane with options; the log goes to the
// returned buffer.
func startWith(t *testing.T, files map[string]string, opts server.Options) (*server.Server, *syncBuf) {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logs := &syncBuf{}
	opts.ConfigDir = dir
	opts.XDSAddress, opts.MonitoringAddress = "127.0.0.1:0", "127.0.0.1:0"
	opts.Debounce = 10 * time.Millisecond
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	return s, logs
}

// run serves s until the test ends, and fails the test if Run fails.
func run(t *testing.T, s *server.Server) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

type call struct {
	method, path, body string
	hdr                map[string]string
}

// do sends one raw request (Host and headers exactly as given).
func do(t *testing.T, s *server.Server, c call) (int, string) {
	t.Helper()
	req, err := http.NewRequest(c.method, "http://"+s.MonitoringAddr()+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const vsYAML = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n"

func exists(t *testing.T, s *server.Server, kind, name string) bool {
	t.Helper()
	code, body := do(t, s, call{method: "GET", path: server.PathConfig + "?kind=" + kind + "&name=" + name})
	if code != 200 {
		t.Fatalf("get: %d %s", code, body)
	}
	return strings.Contains(body, `"name": "`+name+`"`)
}

func TestAPIWritesNeedToken(t *testing.T) {
	s, logs := startWith(t, map[string]string{"bookinfo.yaml": bookinfo}, server.Options{TokenDir: "-"})
	tok := s.AdminToken()
	if len(tok) != 64 {
		t.Fatalf("admin token %q: want 64 hex characters", tok)
	}
	yaml := map[string]string{"Content-Type": "application/yaml"}
	with := func(h map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	wrong := tok[:63] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", tok[63])+1)%16])
	for _, tc := range []struct {
		name string
		c    call
		want int
	}{
		{"apply without token", call{"POST", server.PathApply, vsYAML, yaml}, 401},
		{"apply with a wrong token", call{"POST", server.PathApply, vsYAML, with(yaml, "Authorization", "Bearer "+wrong)}, 401},
		{"apply with an empty token", call{"POST", server.PathApply, vsYAML, with(yaml, "Authorization", "Bearer ")}, 401},
		{"apply with basic auth", call{"POST", server.PathApply, vsYAML, with(yaml, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("admin:"+tok)))}, 401},
		{"apply text/plain with the token", call{"POST", server.PathApply, vsYAML, map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "text/plain"}}, 415},
		{"apply form with the token", call{"POST", server.PathApply, vsYAML, map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/x-www-form-urlencoded"}}, 415},
		{"apply multipart with the token", call{"POST", server.PathApply, vsYAML, map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "multipart/form-data; boundary=x"}}, 415},
		{"apply no content type with the token", call{"POST", server.PathApply, vsYAML, map[string]string{"Authorization": "Bearer " + tok}}, 415},
		{"delete-docs without token", call{"POST", server.PathDelete, vsYAML, yaml}, 401},
		{"delete without token", call{"DELETE", server.PathConfig + "/Service/default/ratings", "", nil}, 401},
		{"read with a wrong token", call{"GET", "/debug/configz", "", map[string]string{"Authorization": "Bearer " + wrong}}, 401},
	} {
		if code, body := do(t, s, tc.c); code != tc.want {
			t.Errorf("%s: got %d, want %d: %s", tc.name, code, tc.want, body)
		}
	}
	if exists(t, s, "VirtualService", "reviews") {
		t.Fatal("a refused apply changed the config")
	}
	if !exists(t, s, "Service", "ratings") {
		t.Fatal("a refused delete changed the config")
	}
	// The right token and type work; the change is in the audit log.
	if code, body := do(t, s, call{"POST", server.PathApply, vsYAML, with(yaml, "Authorization", "Bearer "+tok)}); code != 200 {
		t.Fatalf("apply with the token: %d %s", code, body)
	}
	if code, body := do(t, s, call{"DELETE", server.PathConfig + "/Service/default/ratings", "", map[string]string{"Authorization": "Bearer " + tok}}); code != 200 {
		t.Fatalf("delete with the token: %d %s", code, body)
	}
	log := logs.String()
	for _, want := range []string{
		`msg="api change" who=admin-token@127.0.0.1:`, `op=apply kind=VirtualService namespace=default name=reviews`, `result=created`,
		`op=delete kind=Service namespace=default name=ratings`, `result=deleted`,
		`msg="api request refused" peer=127.0.0.1:`, `status=401`, `status=415`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, tok) {
		t.Error("the log shows the admin token")
	}
}

// TestCrossSiteRequestRefused sends what a web page can make a browser
// send with no preflight: a POST with a CORS-safelisted content type and a
// foreign Origin (and Sec-Fetch-Site, as browsers add it).
func TestCrossSiteRequestRefused(t *testing.T) {
	s, _ := startWith(t, map[string]string{"bookinfo.yaml": bookinfo}, server.Options{TokenDir: "-"})
	tok := s.AdminToken()
	for _, tc := range []struct {
		name string
		hdr  map[string]string
	}{
		{"simple request, foreign Origin", map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}},
		{"simple request, Origin null", map[string]string{"Content-Type": "text/plain", "Origin": "null"}},
		{"simple request, Sec-Fetch-Site cross-site", map[string]string{"Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site"}},
		{"form post, foreign Origin", map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"}},
		// Even the right token does not help a foreign page.
		{"token, foreign Origin", map[string]string{"Content-Type": "application/yaml", "Origin": "http://evil.example", "Authorization": "Bearer " + tok}},
		{"token, same-site other port", map[string]string{"Content-Type": "application/yaml", "Origin": "http://127.0.0.1:1", "Authorization": "Bearer " + tok}},
	} {
		code, body := do(t, s, call{"POST", server.PathApply, vsYAML, tc.hdr})
		if code != http.StatusForbidden && code != http.StatusUnauthorized && code != http.StatusUnsupportedMediaType {
			t.Errorf("%s: got %d, want a refusal: %s", tc.name, code, body)
		}
	}
	if exists(t, s, "VirtualService", "reviews") {
		t.Fatal("a cross-site request changed the config")
	}
	// Reads from another site are refused too (a page must not read the
	// mesh's topology through the operator's browser).
	if code, _ := do(t, s, call{"GET", "/debug/registryz", "", map[string]string{"Origin": "http://evil.example"}}); code != http.StatusForbidden {
		t.Errorf("cross-site read: got %d, want 403", code)
	}
	// The same request from the CLI's side (no Origin) works.
	if code, body := do(t, s, call{"POST", server.PathApply, vsYAML, map[string]string{"Content-Type": "application/yaml", "Authorization": "Bearer " + tok}}); code != 200 {
		t.Fatalf("apply: %d %s", code, body)
	}
}

func TestHostRebindingRefused(t *testing.T) {
	s, _ := startWith(t, nil, server.Options{TokenDir: "-", AllowedHosts: []string{"cp.mesh.internal"}})
	_, port, _ := strings.Cut(s.MonitoringAddr(), ":")
	for _, tc := range []struct {
		host string
		want int
	}{
		{"evil.example:" + port, 403},
		{"127.0.0.1.nip.io:" + port, 403},
		{"localhost.evil.example:" + port, 403},
		{"localhost:" + port, 200},
		{"127.0.0.1:" + port, 200},
		{"[::1]:" + port, 200},
		{"10.1.2.3:" + port, 200},
		{"cp.mesh.internal:" + port, 200},
		{"CP.Mesh.Internal.:" + port, 200},
	} {
		for _, path := range []string{"/debug/configz", "/metrics", server.PathConfig} {
			if code, body := do(t, s, call{"GET", path, "", map[string]string{"Host": tc.host}}); code != tc.want {
				t.Errorf("Host %s %s: got %d, want %d: %s", tc.host, path, code, tc.want, body)
			}
		}
	}
}

// testKey makes a TLS key pair for a planted Secret.
func testKey(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "httpbin.example.com"},
		DNSNames: []string{"httpbin.example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

// TestSecretsRedactedEverywhere plants a gateway credential (once as
// base64 data, once as stringData), makes a router use it, then fetches
// every registered GET endpoint without the token and greps each answer,
// and the log, for the key.
func TestSecretsRedactedEverywhere(t *testing.T) {
	certPEM, keyPEM := testKey(t)
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	keyBody := strings.Split(string(keyPEM), "\n")[1] // a line of the key's own base64
	indent := func(s string) string { return "    " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ") }
	files := map[string]string{
		"bookinfo.yaml": bookinfo,
		"gateway.yaml": `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    tls: {mode: SIMPLE, credentialName: httpbin-credential}
    hosts: [httpbin.example.com]
  - port: {number: 8443, name: https-2, protocol: HTTPS}
    tls: {mode: SIMPLE, credentialName: plain-credential}
    hosts: [plain.example.com]
`,
		"secret.yaml": fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: httpbin-credential, namespace: istio-system}
type: kubernetes.io/tls
data:
  tls.crt: %s
  tls.key: %s # the key: %s
`, b64(certPEM), b64(keyPEM), keyBody),
		"secret-string.yaml": fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: plain-credential, namespace: istio-system}
type: kubernetes.io/tls
stringData:
  tls.crt: |
%s
  tls.key: |
%s
`, indent(string(certPEM)), indent(string(keyPEM))),
	}
	s, logs := startWith(t, files, server.Options{TokenDir: "-", SecureAddress: "127.0.0.1:0"})
	m := &node.Meta{Type: node.Router, IP: "127.0.0.1", Name: "istio-ingressgateway", Namespace: "istio-system",
		Labels: map[string]string{"istio": "ingressgateway"}}
	// Credentials go only to proxies that proved their namespace.
	c, err := dialAs(t, s, m, "istio-ingressgateway-service-account")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The router gets both secrets (so the dump has something to leak).
	eventually(t, "secrets served to the router", func() (bool, string) {
		code, body := do(t, s, call{"GET", server.PathProxies + "/" + m.ID() + "/config_dump", "", nil})
		return code == 200 && strings.Contains(body, "kubernetes://httpbin-credential") && strings.Contains(body, "kubernetes://plain-credential"), body
	})

	leaks := func(body string) string {
		for _, needle := range []string{"PRIVATE KEY", keyBody, b64(keyPEM), b64(keyPEM)[:40]} {
			if strings.Contains(body, needle) {
				return needle
			}
		}
		return ""
	}
	checked := 0
	for _, pat := range s.Patterns() {
		method, path, _ := strings.Cut(pat, " ")
		if method != "GET" {
			continue
		}
		path = strings.ReplaceAll(path, "{name}", m.ID())
		if strings.Contains(path, "{") {
			t.Fatalf("pattern %q: the walk does not know how to fill it in", pat)
		}
		if strings.HasPrefix(path, "/debug/pprof/") {
			// Go profiles are the admin's (TestPprofNeedsToken).
			if code, body := do(t, s, call{"GET", path + "?seconds=1", "", nil}); code != 401 {
				t.Errorf("GET %s without token: %d, want 401: %s", path, code, body)
			}
			continue
		}
		id := "?proxyID=" + m.ID()
		for _, q := range []string{id, id + "&kind=Secret", id + "&kind=Secret&namespace=istio-system&name=httpbin-credential", id + "&kind=Secret&name=plain-credential"} {
			code, body := do(t, s, call{"GET", path + q, "", nil})
			if code != 200 {
				t.Errorf("GET %s%s without token: %d (monitoring stays readable): %s", path, q, code, body)
			}
			if n := leaks(body); n != "" {
				t.Errorf("GET %s%s without token shows key material (%q):\n%s", path, q, n, body)
			}
			checked++
		}
	}
	if checked < 30 {
		t.Fatalf("walked only %d endpoint/query pairs", checked)
	}
	// Redaction keeps the keys' names.
	_, body := do(t, s, call{"GET", server.PathConfig + "?kind=Secret&namespace=istio-system", "", nil})
	if !strings.Contains(body, "tls.key: '\\u003credacted: ") && !strings.Contains(body, "tls.key: \\u003credacted: ") {
		t.Errorf("redacted Secret lost its key names:\n%s", body)
	}

	// The CLI: without a token, weft get shows the Secret redacted; with
	// it, the data (as kubectl get -o yaml does).
	var out, errb bytes.Buffer
	if code := cli.Main([]string{"get", "secret", "httpbin-credential", "-n", "istio-system", "-o", "yaml", "--control-plane", s.MonitoringAddr()}, nil, &out, &errb); code != 0 {
		t.Fatalf("weft get secret: %d %s", code, errb.String())
	}
	if n := leaks(out.String()); n != "" || !strings.Contains(out.String(), "tls.key: '<redacted: ") {
		t.Errorf("weft get secret -o yaml without a token:\n%s", out.String())
	}
	out.Reset()
	if code := cli.Main([]string{"get", "secret", "httpbin-credential", "-n", "istio-system", "-o", "yaml", "--control-plane", s.MonitoringAddr(), "--token", s.AdminToken()}, nil, &out, &errb); code != 0 {
		t.Fatalf("weft get secret --token: %d %s", code, errb.String())
	}
	if !strings.Contains(out.String(), b64(keyPEM)) {
		t.Errorf("weft get secret -o yaml with the token does not show the data:\n%s", out.String())
	}
	if n := leaks(logs.String()); n != "" {
		t.Errorf("the log shows key material (%q)", n)
	}
}

func TestTokenFilesArePrivate(t *testing.T) {
	tokDir := filepath.Join(t.TempDir(), "tokens")
	s, _ := startWith(t, nil, server.Options{TokenDir: tokDir})
	st, err := os.Stat(tokDir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("token dir: %v %v", st.Mode(), err)
	}
	tok, err := apiauth.Discover(tokDir, s.MonitoringAddr())
	if err != nil || tok != s.AdminToken() {
		t.Fatalf("Discover = %q, %v; want the server's token", tok, err)
	}
	matches, _ := filepath.Glob(filepath.Join(tokDir, "*"))
	for _, p := range matches {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v", p, st.Mode(), err)
		}
	}
	// A discovery file others can read is refused, not used.
	os.Chmod(matches[0], 0o644)
	if _, err := apiauth.Discover(tokDir, s.MonitoringAddr()); err == nil {
		t.Error("Discover used a world-readable token file")
	}
	os.Chmod(matches[0], 0o600)
	os.Chmod(tokDir, 0o755)
	if _, err := apiauth.Discover(tokDir, s.MonitoringAddr()); err == nil {
		t.Error("Discover used a token in a world-readable dir")
	}
}

func TestTokenInStateDir(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	s, _ := startWith(t, nil, server.Options{TokenDir: "-", StateDir: state})
	p := filepath.Join(state, apiauth.StateFile)
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v", p, st, err)
	}
	b, _ := os.ReadFile(p)
	if strings.TrimSpace(string(b)) != s.AdminToken() {
		t.Fatal("state dir token differs from the server's")
	}
	// --token-file works with the CLI.
	var out, errb bytes.Buffer
	if code := cli.Main([]string{"apply", "-f", "-", "--control-plane", s.MonitoringAddr(), "--token-file", p}, strings.NewReader(vsYAML), &out, &errb); code != 0 {
		t.Fatalf("apply --token-file: %d %s", code, errb.String())
	}
	// No token at all: a clear refusal.
	errb.Reset()
	if code := cli.Main([]string{"delete", "vs", "reviews", "--control-plane", s.MonitoringAddr()}, nil, &out, &errb); code == 0 || !strings.Contains(errb.String(), "admin token") {
		t.Fatalf("delete without a token: %d %s", code, errb.String())
	}
}

// TestMetricsFormat: /metrics is valid Prometheus text even when a label
// value (a rejected file's name) holds a quote, a backslash, non-ASCII and
// a tab, which Go's %q turned into an escape Prometheus cannot read (\t).
func TestMetricsFormat(t *testing.T) {
	name := "bad \"é\\\tname.yaml" // quote, backslash, tab
	s, _ := startWith(t, map[string]string{"bookinfo.yaml": bookinfo, name: "kind: VirtualService\napiVersion: networking.istio.io/v1\nmetadata: {name: x}\nspec: {htp: []}\n"}, server.Options{TokenDir: "-"})
	code, body := do(t, s, call{"GET", "/metrics", "", nil})
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	if err := promtext.Lint(body); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if !strings.Contains(body, "weft_config_errors{file=\"bad \\\"é\\\\\tname.yaml\"} 1") {
		t.Errorf("weft_config_errors for %q missing:\n%s", name, body)
	}
}
