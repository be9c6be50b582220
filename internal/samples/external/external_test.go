package external

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// client trusts the CA and dials srv whatever the URL's host, like a proxy
// with a DNS override.
func client(t *testing.T, ca *CA, addr string, certs ...tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.CertPEM) {
		t.Fatal("bad CA PEM")
	}
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, Certificates: certs},
			ForceAttemptHTTP2: true,
			DialContext: func(_ context.Context, _, _ string) (net.Conn, error) {
				return net.Dial("tcp", addr)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func start(t *testing.T, cfg Config, ca *CA, mutual bool) (plain, secure *httptest.Server) {
	t.Helper()
	cert, err := ca.Issue(cfg.Hosts)
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(cfg)
	plain = httptest.NewServer(h)
	t.Cleanup(plain.Close)
	secure = httptest.NewUnstartedServer(h)
	var pool *x509.CertPool
	if mutual {
		pool = x509.NewCertPool()
		pool.AppendCertsFromPEM(ca.CertPEM)
	}
	secure.TLS = TLSConfig(cert, pool)
	secure.EnableHTTP2 = true
	secure.StartTLS()
	t.Cleanup(secure.Close)
	return plain, secure
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), nil
}

func TestSite(t *testing.T) {
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Hosts: []string{"edition.cnn.com", "httpbin.org"}}
	plain, secure := start(t, cfg, ca, false)
	tests := []struct {
		name     string
		srv      *httptest.Server
		url      string
		code     int
		proto    int
		contains []string
	}{
		{"https page", secure, "https://edition.cnn.com/politics", 200, 2, []string{"edition.cnn.com (weft external sample)", "GET /politics", "via https"}},
		{"http page", plain, "http://edition.cnn.com/politics", 200, 1, []string{"via http\n", "Host: edition.cnn.com"}},
		{"httpbin headers", plain, "http://httpbin.org/headers", 200, 1, []string{`"Host": "httpbin.org"`}},
		{"httpbin over https", secure, "https://httpbin.org/status/418", 418, 2, []string{"I'm a teapot!"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, err := get(t, client(t, ca, tc.srv.Listener.Addr().String()), tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.code || resp.ProtoMajor != tc.proto {
				t.Fatalf("%d %s", resp.StatusCode, resp.Proto)
			}
			for _, c := range tc.contains {
				if !strings.Contains(body, c) {
					t.Errorf("body lacks %q:\n%s", c, body)
				}
			}
		})
	}
	// The certificate does not cover other names.
	if _, _, err := get(t, client(t, ca, secure.Listener.Addr().String()), "https://www.google.com/"); err == nil {
		t.Error("certificate accepted for an unlisted host")
	}
}

func TestRedirectHTTP(t *testing.T) {
	ca, _ := NewCA("test")
	plain, secure := start(t, Config{Hosts: []string{"edition.cnn.com"}, RedirectHTTP: true}, ca, false)
	resp, _, err := get(t, client(t, ca, plain.Listener.Addr().String()), "http://edition.cnn.com:80/politics?x=1")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://edition.cnn.com/politics?x=1" {
		t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _, err = get(t, client(t, ca, secure.Listener.Addr().String()), "https://edition.cnn.com/politics")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("https after redirect: %v %v", resp, err)
	}
}

func TestMutual(t *testing.T) {
	ca, _ := NewCA("test")
	_, secure := start(t, Config{Hosts: []string{"my-nginx.mesh-external.svc.cluster.local"}}, ca, true)
	addr := secure.Listener.Addr().String()
	url := "https://my-nginx.mesh-external.svc.cluster.local/"
	if _, _, err := get(t, client(t, ca, addr), url); err == nil {
		t.Fatal("request without client certificate succeeded")
	}
	cc, err := ca.Issue([]string{"client.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := KeyPEM(cc)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	resp, _, err := get(t, client(t, ca, addr, pair), url)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("with client certificate: %v %v", resp, err)
	}
	if _, err := ca.Issue(nil); err == nil {
		t.Error("Issue(nil): want error")
	}
}
