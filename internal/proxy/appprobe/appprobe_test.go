package appprobe

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHandler(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			if r.Header.Get("X-Probe") != "yes" {
				w.WriteHeader(400)
			}
		case "/moved":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		default:
			w.WriteHeader(500)
		}
	}))
	defer app.Close()
	appPort := port(t, app.Listener.Addr().String())

	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("up", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go gs.Serve(gl)
	defer gs.Stop()
	grpcPort := port(t, gl.Addr().String())

	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := port(t, closed.Addr().String())
	closed.Close()

	probers, err := Parse(fmt.Sprintf(`{
	  "/app-health/app/readyz": {"httpGet": {"path": "/ok", "port": %[1]s, "scheme": "HTTP", "httpHeaders": [{"name": "X-Probe", "value": "yes"}]}, "timeoutSeconds": 1},
	  "/app-health/app/livez": {"httpGet": {"path": "/fail", "port": %[1]s}},
	  "/app-health/app/startupz": {"httpGet": {"path": "/moved", "port": %[1]s}},
	  "/app-health/tcp/readyz": {"tcpSocket": {"port": %[1]s}},
	  "/app-health/tcp/livez": {"tcpSocket": {"port": %[2]s}},
	  "/app-health/grpc/readyz": {"grpc": {"port": %[3]s, "service": "up"}},
	  "/app-health/grpc/livez": {"grpc": {"port": %[3]s, "service": "down"}}
	}`, appPort, closedPort, grpcPort))
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(probers, "127.0.0.1")
	for path, want := range map[string]int{
		"/app-health/app/readyz":   200,
		"/app-health/app/livez":    503,
		"/app-health/app/startupz": 200, // 3xx succeeds, as for the kubelet
		"/app-health/tcp/readyz":   200,
		"/app-health/tcp/livez":    503,
		"/app-health/grpc/readyz":  200,
		"/app-health/grpc/livez":   503,
		"/app-health/nope/readyz":  404,
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("%s: %d, want %d (%s)", path, rec.Code, want, rec.Body.String())
		}
	}
}

func TestParse(t *testing.T) {
	// What the injector writes (internal/controlplane/inject's test pins the same value).
	if _, err := Parse(`{"/app-health/reviews/livez":{"tcpSocket":{"port":9080},"timeoutSeconds":1},"/app-health/reviews/readyz":{"httpGet":{"path":"/health","port":9080,"scheme":"HTTP"},"timeoutSeconds":2}}`); err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		`{`:                                  "app probers",
		`{"/x": {"tcpSocket": {"port": 1}}}`: "not under /app-health/",
		`{"/app-health/a/readyz": {}}`:       "no httpGet",
		`{"/app-health/a/readyz": {"httpGet": {"port": "http"}}}`: "app probers",
		`{"/app-health/a/readyz": {"httpGet": {"port": 0}}}`:      "not a number",
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s) = %v, want %q", in, err, want)
		}
	}
}
