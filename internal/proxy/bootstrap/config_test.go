package bootstrap

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/node"
)

func TestParseFlagsAndEnv(t *testing.T) {
	env := map[string]string{
		"WEFT_NAMESPACE":    "bookinfo",
		"WEFT_LABELS":       "app=reviews,version=v1",
		"WEFT_PORTS":        "http:9080:HTTP",
		"WEFT_DNS_OVERRIDE": "httpbin.org=127.0.0.9",
		"WEFT_NAME":         "from-env",
	}
	c, err := Parse("sidecar", []string{"--xds", "127.0.0.1:15010", "--name", "reviews-v1", "--ip", "127.0.10.3",
		"--app-address", "127.0.11.3", "--proxy-port", "15080", "--admin-port", "0", "--drain-duration", "2s", "--port-map", "8080=18080"},
		func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	m := c.Meta
	if m.Type != node.Sidecar || m.Name != "reviews-v1" || m.Namespace != "bookinfo" || m.Labels["version"] != "v1" ||
		len(m.Ports) != 1 || m.Ports[0].Port != 9080 || m.ProxyPort != 15080 || m.AppAddress != "127.0.11.3" || m.Capture {
		t.Fatalf("meta %+v", m)
	}
	if c.DrainDuration != 2*time.Second || c.DNSOverride["httpbin.org"] != "127.0.0.9" || c.PortMap[8080] != 18080 {
		t.Fatalf("config %+v", c)
	}
	if got := c.AdminAddr(); got != "127.0.10.3:0" {
		t.Fatalf("admin addr %s", got)
	}
	if got := c.PublicAddr(15021); got != "127.0.10.3:15021" {
		t.Fatalf("health addr %s", got)
	}
	// The node metadata round-trips through the shared contract.
	back, err := node.Parse(m.Node())
	if err != nil || back.Name != "reviews-v1" || back.ProxyPort != 15080 || back.Labels["app"] != "reviews" {
		t.Fatalf("node round trip %+v, %v", back, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ip", "nope"}, "--ip"},
		{[]string{"--labels", "novalue"}, "--labels"},
		{[]string{"--ports", "http:99999"}, "--ports"},
		{[]string{"--admin-port", "x"}, "--admin-port"},
		{[]string{"--dns-override", "a=notanip"}, "--dns-override"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"extra"}, "unexpected"},
		{[]string{"--port-map", "80"}, "--port-map"},
	} {
		_, err := Parse("router", tc.args, func(string) string { return "" }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
	if _, err := Parse("gateway", nil, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("unknown command accepted")
	}
}

func TestResolverOverride(t *testing.T) {
	r := &Resolver{Override: map[string]string{"svc.example": "127.0.0.7"}, Fallback: failResolver{}}
	got, err := r.LookupHost(context.Background(), "SVC.example.")
	if err != nil || len(got) != 1 || got[0] != "127.0.0.7" {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := r.LookupHost(context.Background(), "other.example"); err == nil {
		t.Fatal("fallback not used")
	}
}

type failResolver struct{}

func (failResolver) LookupHost(context.Context, string) ([]string, error) {
	return nil, io.ErrUnexpectedEOF
}

func TestParseAppProbers(t *testing.T) {
	env := map[string]string{"ISTIO_KUBE_APP_PROBERS": `{"/app-health/app/readyz":{"tcpSocket":{"port":9080}}}`}
	c, err := Parse("sidecar", nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.AppProbers["/app-health/app/readyz"]; !ok {
		t.Fatalf("ISTIO_KUBE_APP_PROBERS not read: %v", c.AppProbers)
	}
	env["ISTIO_KUBE_APP_PROBERS"] = `{"/app-health/app/readyz":{}}`
	if _, err := Parse("sidecar", nil, func(k string) string { return env[k] }, io.Discard); err == nil || !strings.Contains(err.Error(), "--app-probers") {
		t.Fatalf("err = %v, want one naming --app-probers", err)
	}
}
