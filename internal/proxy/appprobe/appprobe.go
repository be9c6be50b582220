// Package appprobe serves the application's own probes through the
// sidecar, as Istio's status port does: the injector rewrote the kubelet's
// HTTP, TCP and gRPC probes to GET :15020/app-health/<container>/<kind>
// and handed the originals over in ISTIO_KUBE_APP_PROBERS; this package
// runs the original probe against the app and answers with its result, so
// kubelet probes keep working under STRICT mutual TLS.
package appprobe

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Prober is one original probe (the Kubernetes probe handler's JSON).
type Prober struct {
	HTTPGet *struct {
		Path        string       `json:"path"`
		Port        json.Number  `json:"port"`
		Host        string       `json:"host"`
		Scheme      string       `json:"scheme"`
		HTTPHeaders []HTTPHeader `json:"httpHeaders"`
	} `json:"httpGet"`
	TCPSocket *struct {
		Port json.Number `json:"port"`
		Host string      `json:"host"`
	} `json:"tcpSocket"`
	GRPC *struct {
		Port    int32   `json:"port"`
		Service *string `json:"service"`
	} `json:"grpc"`
	TimeoutSeconds int `json:"timeoutSeconds"`
}

// HTTPHeader is a header the original HTTP probe sends.
type HTTPHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Parse reads ISTIO_KUBE_APP_PROBERS (path → probe). Named ports were
// resolved by the injector; a probe without a numeric port is an error.
func Parse(s string) (map[string]Prober, error) {
	out := map[string]Prober{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("app probers: %w", err)
	}
	for path, p := range out {
		if !strings.HasPrefix(path, "/app-health/") {
			return nil, fmt.Errorf("app probers: path %q is not under /app-health/", path)
		}
		n := 0
		var port json.Number
		switch {
		case p.HTTPGet != nil:
			n, port = n+1, p.HTTPGet.Port
		case p.TCPSocket != nil:
			n, port = n+1, p.TCPSocket.Port
		case p.GRPC != nil:
			n, port = n+1, json.Number(strconv.Itoa(int(p.GRPC.Port)))
		}
		if n == 0 {
			return nil, fmt.Errorf("app probers: %s has no httpGet, tcpSocket or grpc", path)
		}
		if v, err := strconv.Atoi(port.String()); err != nil || v < 1 || v > 65535 {
			return nil, fmt.Errorf("app probers: %s: port %q is not a number", path, port)
		}
	}
	return out, nil
}

// Handler answers /app-health/... by running the matching probe against
// host (the app's address, usually 127.0.0.1; the proxy's own traffic is
// not captured). Success is 200, failure 503 with the reason; unknown
// paths are 404.
func Handler(probers map[string]Prober, host string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := probers[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		timeout := time.Duration(p.TimeoutSeconds) * time.Second
		if timeout <= 0 {
			timeout = time.Second
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		if err := p.run(ctx, host); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

var httpClient = &http.Client{
	// Like the kubelet: no redirects to other hosts matter here, and
	// HTTPS probes do not verify the app's certificate.
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

func (p Prober) run(ctx context.Context, host string) error {
	switch {
	case p.HTTPGet != nil:
		g := p.HTTPGet
		h := host
		if g.Host != "" {
			h = g.Host
		}
		scheme := strings.ToLower(g.Scheme)
		if scheme == "" {
			scheme = "http"
		}
		path := g.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(h, g.Port.String())+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "kube-probe/weft")
		for _, hd := range g.HTTPHeaders {
			if strings.EqualFold(hd.Name, "Host") {
				req.Host = hd.Value
				continue
			}
			req.Header.Add(hd.Name, hd.Value)
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		// The kubelet's rule: 200 ≤ status < 400 succeeds.
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("app answered %d", resp.StatusCode)
		}
		return nil
	case p.TCPSocket != nil:
		h := host
		if p.TCPSocket.Host != "" {
			h = p.TCPSocket.Host
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(h, p.TCPSocket.Port.String()))
		if err != nil {
			return err
		}
		return c.Close()
	case p.GRPC != nil:
		conn, err := grpc.NewClient(net.JoinHostPort(host, strconv.Itoa(int(p.GRPC.Port))), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		svc := ""
		if p.GRPC.Service != nil {
			svc = *p.GRPC.Service
		}
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			return err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("app is %s", resp.GetStatus())
		}
		return nil
	}
	return fmt.Errorf("no probe")
}
