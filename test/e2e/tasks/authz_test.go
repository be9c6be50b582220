package tasks

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/weftmesh/weft/internal/demo"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/samples/bookinfo"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// Istio's security tasks on the demo, with their YAML from examples/tasks
// (adapted where an address or namespace differs).

func denied(r kit.Response) bool {
	return r.Status == http.StatusForbidden && strings.Contains(r.Body, "RBAC: access denied")
}

// TestAuthorizationHTTP is "Authorization for HTTP traffic": allow-nothing
// closes Bookinfo (403 RBAC at productpage), productpage-viewer opens the
// page for GET while details and reviews stay closed; then details,
// reviews and ratings open to their callers' principals (mutual TLS) —
// without workload certificates, to GET from anyone.
func TestAuthorizationHTTP(t *testing.T) {
	m := mesh(t)
	weft.Apply(t, kit.Task("authz-http-allow-nothing/allow-nothing.yaml"))
	meshtest.Eventually(t, "allow-nothing: productpage denied", 30*time.Second, func() error {
		if r := productpage(t, ""); !denied(r) {
			return fmt.Errorf("productpage: %d %.80q", r.Status, r.Body)
		}
		return nil
	})
	weft.Apply(t, kit.Task("authz-http-productpage-viewer/productpage-viewer.yaml"))
	meshtest.Eventually(t, "productpage-viewer: page served, details and reviews denied", 30*time.Second, func() error {
		r := productpage(t, "")
		if r.Status != 200 || !strings.Contains(r.Body, bookinfo.DetailsUnavailable) || !strings.Contains(r.Body, bookinfo.ReviewsUnavailable) {
			return fmt.Errorf("productpage: %d, details/reviews unavailable: %v/%v", r.Status,
				strings.Contains(r.Body, bookinfo.DetailsUnavailable), strings.Contains(r.Body, bookinfo.ReviewsUnavailable))
		}
		return nil
	})
	if r := fromWorkload(t, m, "curl", "http://productpage:9080/productpage", nil); r.Status != 200 {
		t.Errorf("GET from curl is allowed by productpage-viewer: %d", r.Status)
	}
	if r := postFrom(t, m, "curl", "http://productpage:9080/productpage"); !denied(r) {
		t.Errorf("POST is not in productpage-viewer: %d %.80q", r.Status, r.Body)
	}
	viewers := "authz-http-viewers/details-reviews-viewer.yaml"
	if !meshTLS(t, "details-v1") {
		t.Log("no workload certificates: principals cannot match; GET from anyone instead")
		viewers = "authz-http-get-only/get-only.yaml"
	}
	weft.Apply(t, kit.Task(viewers))
	meshtest.Eventually(t, "viewers: the whole page", 30*time.Second, func() error {
		r := productpage(t, "")
		if r.Status != 200 || strings.Contains(r.Body, bookinfo.DetailsUnavailable) || strings.Contains(r.Body, bookinfo.ReviewsUnavailable) ||
			strings.Contains(r.Body, bookinfo.RatingsUnavailable) {
			return fmt.Errorf("productpage: %d (details, reviews, ratings unavailable: %v %v %v)", r.Status,
				strings.Contains(r.Body, bookinfo.DetailsUnavailable), strings.Contains(r.Body, bookinfo.ReviewsUnavailable),
				strings.Contains(r.Body, bookinfo.RatingsUnavailable))
		}
		return nil
	})
	if viewers == "authz-http-viewers/details-reviews-viewer.yaml" {
		// curl is not productpage: its principal does not match.
		if r := fromWorkload(t, m, "curl", "http://details:9080/details/0", nil); !denied(r) {
			t.Errorf("curl → details must be denied by principal: %d %.80q", r.Status, r.Body)
		}
	}
}

func meshTLS(t *testing.T, workload string) bool {
	out, err := weft.Output(t, "", "x", "describe", "workload", workload, "-o", "json")
	if err != nil {
		return false
	}
	var d struct {
		MeshTLS bool `json:"meshTLS"`
	}
	return json.Unmarshal([]byte(out), &d) == nil && d.MeshTLS
}

// postFrom POSTs through the workload's sidecar (explicit mode; in
// capture mode through curl inside its namespace).
func postFrom(t *testing.T, m *demo.Mesh, workload, rawURL string) kit.Response {
	t.Helper()
	if w := m.Workload(workload); w.Netns != "" {
		out, _ := exec.Command("ip", "netns", "exec", w.Netns, m.WeftBin(), "sample", "curl", "-s", "-m", "30s",
			"-X", "POST", "-w", "\n%{http_code}", rawURL).Output()
		s := strings.TrimRight(string(out), "\n")
		i := strings.LastIndexByte(s, '\n')
		code, err := strconv.Atoi(s[i+1:])
		if err != nil {
			return kit.Response{Status: -1, Body: s}
		}
		return kit.Response{Status: code, Body: s[:max(i, 0)]}
	}
	resp, err := kit.ViaSidecar(m, workload).Post(rawURL, "text/plain", strings.NewReader("x"))
	if err != nil {
		return kit.Response{Status: -1, Body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return kit.Response{Status: resp.StatusCode, Body: string(b)}
}

// TestAuthorizationTCP is "Authorization for TCP traffic" on tcp-echo's
// ports: ALLOW port 9000 (9001 refused); an ALLOW rule with an HTTP-only
// field is ignored (9000 refused too); a DENY rule with one applies to
// the whole port.
func TestAuthorizationTCP(t *testing.T) {
	m := mesh(t)
	ip := m.Workload("tcp-echo-v1").IP
	p9000, p9001 := ip+":9000", ip+":9001"
	works := func(addr string) error {
		_, err := echo(addr)
		return err
	}
	meshtest.Eventually(t, "no policy: both ports", 30*time.Second, func() error {
		if err := works(p9000); err != nil {
			return err
		}
		return works(p9001)
	})
	weft.Apply(t, kit.Task("authz-tcp-allow-port/tcp-policy.yaml"))
	meshtest.Eventually(t, "ALLOW 9000: 9001 refused", 30*time.Second, func() error {
		if err := works(p9001); err == nil {
			return fmt.Errorf("9001 still served")
		}
		return works(p9000)
	})
	weft.Apply(t, kit.Task("authz-tcp-allow-methods/tcp-policy-methods.yaml"))
	meshtest.Eventually(t, "ALLOW rule with methods is ignored: 9000 refused", 30*time.Second, func() error {
		if err := works(p9000); err == nil {
			return fmt.Errorf("9000 still served")
		}
		return nil
	})
	weft.Apply(t, kit.Task("authz-tcp-deny-methods/tcp-deny-get.yaml"))
	meshtest.Eventually(t, "DENY with methods applies to the port: 9000 refused, 9001 served", 30*time.Second, func() error {
		if err := works(p9000); err == nil {
			return fmt.Errorf("9000 served")
		}
		return works(p9001)
	})
}

// TestAuthorizationIngress is "Authorization on ingress gateway" with
// remoteIpBlocks: ALLOW the client's address, then DENY it.
func TestAuthorizationIngress(t *testing.T) {
	mesh(t)
	weft.Apply(t, kit.Task("authz-ingress-allow/ingress-policy-allow.yaml"))
	meshtest.Eventually(t, "ALLOW the client's IP: served", 30*time.Second, func() error {
		if r := productpage(t, ""); r.Status != 200 {
			return fmt.Errorf("productpage: %d", r.Status)
		}
		return nil
	})
	weft.Apply(t, kit.Task("authz-ingress-deny/ingress-policy-deny.yaml"))
	meshtest.Eventually(t, "DENY the client's IP: 403", 30*time.Second, func() error {
		if r := productpage(t, ""); !denied(r) {
			return fmt.Errorf("productpage: %d", r.Status)
		}
		return nil
	})
}

// TestAuthorizationDeny is "Authorization policies with a deny action"
// (also Istio's explicit-deny example): DENY GET; DENY GET unless
// x-token: admin; an ALLOW for /ip beside the DENY.
func TestAuthorizationDeny(t *testing.T) {
	m := mesh(t)
	call := func(path string, hdr map[string]string) kit.Response {
		return fromWorkload(t, m, "curl", "http://httpbin:8000"+path, hdr)
	}
	weft.Apply(t, kit.Task("authz-deny-get/deny-method-get.yaml"))
	meshtest.Eventually(t, "GET denied", 30*time.Second, func() error {
		if r := call("/get", nil); !denied(r) {
			return fmt.Errorf("GET /get: %d", r.Status)
		}
		return nil
	})
	weft.Apply(t, kit.Task("authz-deny-get-unless-admin/deny-method-get-unless-admin.yaml"))
	meshtest.Eventually(t, "GET allowed with x-token: admin only", 30*time.Second, func() error {
		if r := call("/get", map[string]string{"x-token": "admin"}); r.Status != 200 {
			return fmt.Errorf("admin: %d", r.Status)
		}
		if r := call("/get", map[string]string{"x-token": "guest"}); !denied(r) {
			return fmt.Errorf("guest: %d", r.Status)
		}
		return nil
	})
	weft.Apply(t, kit.Task("authz-deny-allow-path-ip/allow-path-ip.yaml"))
	meshtest.Eventually(t, "weft x authz check lists both policies", 30*time.Second, func() error {
		out, err := weft.Output(t, "", "x", "authz", "check", "httpbin-v1")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(out, "deny-method-get.default") || !strings.Contains(out, "allow-path-ip.default") ||
			strings.Index(out, "DENY") > strings.Index(out, "ALLOW ") {
			return fmt.Errorf("unexpected output:\n%s", out)
		}
		return nil
	})
	meshtest.Eventually(t, "ALLOW /ip beside the DENY", 30*time.Second, func() error {
		if r := call("/ip", map[string]string{"x-token": "admin"}); r.Status != 200 {
			return fmt.Errorf("admin /ip: %d", r.Status)
		}
		if r := call("/get", map[string]string{"x-token": "admin"}); !denied(r) {
			return fmt.Errorf("admin /get (not allowed by the ALLOW): %d", r.Status)
		}
		if r := call("/ip", map[string]string{"x-token": "guest"}); !denied(r) {
			return fmt.Errorf("guest /ip (the DENY wins): %d", r.Status)
		}
		return nil
	})
}

// TestAuthorizationDryRun is the "Dry Run" task: the dry-run DENY does not
// deny, and the sidecar counts its shadow denials.
func TestAuthorizationDryRun(t *testing.T) {
	m := mesh(t)
	weft.Apply(t, kit.Task("authz-dry-run/deny-path-headers.yaml"))
	shadow := func() int64 {
		r := kit.Get(t, direct, "http://"+m.Workload("httpbin-v1").IP+":15090/stats", nil)
		var n int64
		for _, l := range strings.Split(r.Body, "\n") {
			if strings.Contains(l, "rbac.istio_dry_run_deny_shadow_denied: ") {
				v, _ := strconv.ParseInt(strings.TrimSpace(l[strings.LastIndexByte(l, ' '):]), 10, 64)
				n += v
			}
		}
		return n
	}
	meshtest.Eventually(t, "dry run: /headers served and counted as a shadow denial", 30*time.Second, func() error {
		before := shadow()
		if r := fromWorkload(t, m, "curl", "http://httpbin:8000/headers", nil); r.Status != 200 {
			return fmt.Errorf("/headers: %d", r.Status)
		}
		if after := shadow(); after <= before {
			return fmt.Errorf("shadow_denied %d → %d", before, after)
		}
		return nil
	})
}

// TestAuthorizationJWT is the "JWT token" task with a key the test
// generates (its JWKS served here; the control plane fetches and inlines
// it): valid 200, invalid 401, then require-jwt: missing 403.
func TestAuthorizationJWT(t *testing.T) {
	m := mesh(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "e2e", Use: "sig"}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(set) }))
	defer srv.Close()
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "e2e"))
	claims, _ := json.Marshal(map[string]any{"iss": "testing@secure.istio.io", "sub": "testing@secure.istio.io", "exp": time.Now().Add(time.Hour).Unix()})
	obj, _ := signer.Sign(claims)
	token, _ := obj.CompactSerialize()

	weft.Apply(t, strings.ReplaceAll(kit.Task("authz-jwt/jwt-example.yaml"), "http://127.0.0.1:1/jwks.json", srv.URL+"/jwks.json"))
	call := func(hdr map[string]string) kit.Response {
		return fromWorkload(t, m, "curl", "http://httpbin:8000/headers", hdr)
	}
	meshtest.Eventually(t, "valid token 200, invalid 401, none 200", 30*time.Second, func() error {
		if r := call(map[string]string{"Authorization": "Bearer " + token}); r.Status != 200 {
			return fmt.Errorf("valid token: %d %.80q", r.Status, r.Body)
		}
		if r := call(map[string]string{"Authorization": "Bearer deadbeef"}); r.Status != 401 {
			return fmt.Errorf("invalid token: %d", r.Status)
		}
		if r := call(nil); r.Status != 200 {
			return fmt.Errorf("no token: %d", r.Status)
		}
		return nil
	})
	weft.Apply(t, kit.Task("authz-jwt/require-jwt.yaml"))
	meshtest.Eventually(t, "require-jwt: missing 403, valid 200", 30*time.Second, func() error {
		if r := call(nil); !denied(r) {
			return fmt.Errorf("no token: %d", r.Status)
		}
		if r := call(map[string]string{"Authorization": "Bearer " + token}); r.Status != 200 {
			return fmt.Errorf("valid token: %d", r.Status)
		}
		return nil
	})
}

// TestJWTClaimRouting is Istio's "JWT claim based routing" task at the
// ingress gateway: a VirtualService header match on
// @request.auth.claims.groups routes only verified tokens holding group1.
func TestJWTClaimRouting(t *testing.T) {
	mesh(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "e2e", Use: "sig"}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(set) }))
	defer srv.Close()
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "e2e"))
	sign := func(extra map[string]any) string {
		claims := map[string]any{"iss": "testing@secure.istio.io", "sub": "testing@secure.istio.io", "exp": time.Now().Add(time.Hour).Unix()}
		for k, v := range extra {
			claims[k] = v
		}
		b, _ := json.Marshal(claims)
		obj, err := signer.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := obj.CompactSerialize()
		return tok
	}
	groups := sign(map[string]any{"groups": []string{"group1", "group2"}, "scope": []string{"scope1", "scope2"}})
	demo := sign(nil)

	weft.Apply(t, strings.ReplaceAll(kit.Task("jwt-claim-routing/jwt-claim-routing.yaml"), "http://127.0.0.1:1/jwks.json", srv.URL+"/jwks.json"))
	call := func(token string) int {
		hdr := map[string]string{"Host": "httpbin.example.com"}
		if token != "" {
			hdr["Authorization"] = "Bearer " + token
		}
		return kit.Get(t, kit.Direct, ingressURL("/headers"), hdr).Status
	}
	meshtest.Eventually(t, "group1 token 200, no token 404, invalid 401, token without groups 404", 30*time.Second, func() error {
		if s := call(groups); s != 200 {
			return fmt.Errorf("token with groups [group1 group2]: %d", s)
		}
		if s := call(""); s != 404 {
			return fmt.Errorf("no token: %d", s)
		}
		if s := call("some.invalid.token"); s != 401 {
			return fmt.Errorf("invalid token: %d", s)
		}
		if s := call(demo); s != 404 {
			return fmt.Errorf("token without groups: %d", s)
		}
		return nil
	})
}

// TestExternalAuthorization is the "External Authorization" task with our
// ext-authz sample (gRPC, then HTTP): /headers needs x-ext-authz: allow.
func TestExternalAuthorization(t *testing.T) {
	m := mesh(t)
	hp, gp := freePort(t), freePort(t)
	cmd := exec.Command(filepath.Join(binDir, "weft"), "sample", "ext-authz",
		"--listen-http", "127.0.0.1:"+hp, "--listen-grpc", "127.0.0.1:"+gp)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// MeshConfig is replaced, then restored to the demo's.
	t.Cleanup(func() {
		if out, err := weft.Output(t, kit.Task("../mesh.yaml"), "apply", "-f", "-"); err != nil {
			t.Logf("restoring mesh.yaml: %v\n%s", err, out)
		}
	})
	base := strings.NewReplacer("18000", hp, "19000", gp).Replace(kit.Task("authz-ext/ext-authz.yaml"))
	for _, provider := range []string{"sample-ext-authz-grpc", "sample-ext-authz-http"} {
		y := strings.ReplaceAll(base, "name: sample-ext-authz-grpc\n  rules", "name: "+provider+"\n  rules")
		if out, err := weft.Output(t, y, "apply", "-f", "-"); err != nil {
			t.Fatalf("weft apply: %v\n%s", err, out)
		}
		meshtest.Eventually(t, provider+": deny without the header, allow with it, other paths unchecked", 30*time.Second, func() error {
			r := fromWorkload(t, m, "curl", "http://httpbin:8000/headers", map[string]string{"x-ext-authz": "deny"})
			if r.Status != 403 || !strings.Contains(r.Body, "denied by ext_authz") {
				return fmt.Errorf("deny: %d %.80q", r.Status, r.Body)
			}
			if r := fromWorkload(t, m, "curl", "http://httpbin:8000/headers", map[string]string{"x-ext-authz": "allow"}); r.Status != 200 {
				return fmt.Errorf("allow: %d %.80q", r.Status, r.Body)
			}
			if r := fromWorkload(t, m, "curl", "http://httpbin:8000/ip", nil); r.Status != 200 {
				return fmt.Errorf("/ip: %d", r.Status)
			}
			return nil
		})
		// Remove the policy and wait until /headers is unchecked, so the
		// next provider's checks cannot be answered by this one's config.
		for _, d := range strings.Split(y, "\n---\n") {
			if strings.Contains(d, "kind: AuthorizationPolicy") {
				weft.Output(t, d, "delete", "-f", "-")
			}
		}
		meshtest.Eventually(t, provider+" removed", 30*time.Second, func() error {
			if r := fromWorkload(t, m, "curl", "http://httpbin:8000/headers", nil); r.Status != 200 {
				return fmt.Errorf("/headers without the header: %d", r.Status)
			}
			return nil
		})
	}
	for _, doc := range []string{"ServiceEntry", "AuthorizationPolicy"} {
		for _, d := range strings.Split(base, "\n---\n") {
			if strings.Contains(d, "kind: "+doc) {
				weft.Output(t, d, "delete", "-f", "-")
			}
		}
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
