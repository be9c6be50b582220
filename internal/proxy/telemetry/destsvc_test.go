package telemetry

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/hcm"
	"github.com/weftmesh/weft/internal/proxy/tcp"
)

// inboundServices is a ClusterService over a fixed table, as the runtime
// answers from the compiled clusters' istio.services.
func inboundServices(cluster string) (host, name, namespace string, ok bool) {
	switch cluster {
	case "inbound|9080||":
		return "productpage.default.svc.cluster.local", "productpage", "default", true
	case "inbound|27017||":
		return "mongodb.default.svc.cluster.local", "mongodb", "default", true
	}
	return "", "", "", false
}

func serve(t *testing.T, o hcm.Observer, authority, cluster string) {
	t.Helper()
	info := &filter.Info{Start: time.Now(), Method: "GET", Authority: authority, Cluster: cluster}
	o.Request(httptest.NewRequest("GET", "http://"+authority+"/productpage", nil), info)
	info.Status = 200
	o.Complete(info)
}

// Traffic from the ingress gateway carries the external client's Host;
// the destination reporter names the service from the inbound cluster's
// metadata instead (issue 6).
func TestDestinationServiceFromClusterMetadata(t *testing.T) {
	server := New(Options{Node: meta("productpage-v1", "productpage", "v1"), ClusterService: inboundServices})
	defer server.Close()
	o, err := server.HTTP(&hcmv3.HttpConnectionManager{StatPrefix: "inbound_0.0.0.0_9080"})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, o, "127.0.9.3:8080", "inbound|9080||")
	serve(t, o, "bookinfo.example.com", "inbound|9080||")
	serve(t, o, "productpage:9080", "inbound|9080||")
	// No metadata for this cluster: the Host is all there is.
	serve(t, o, "127.0.0.1:8080", "inbound|9999||")

	text := scrape(t, server)
	l, ok := series(text, "istio_requests_total", map[string]string{"reporter": "destination",
		"destination_service": "productpage.default.svc.cluster.local", "destination_service_name": "productpage",
		"destination_service_namespace": "default", "destination_workload": "productpage-v1"})
	if !ok || !strings.HasSuffix(l, " 3") {
		t.Errorf("want one series counting the 3 requests on inbound|9080|| whatever their Host, got %q in\n%s", l, text)
	}
	if _, ok := series(text, "istio_requests_total", map[string]string{"destination_service": "127.0.9.3"}); ok {
		t.Errorf("the client's Host leaked into destination_service:\n%s", text)
	}
	if _, ok := series(text, "istio_requests_total", map[string]string{"destination_service": "bookinfo.example.com"}); ok {
		t.Errorf("the client's Host leaked into destination_service:\n%s", text)
	}
	if l, ok := series(text, "istio_requests_total", map[string]string{"destination_service": "127.0.0.1",
		"destination_service_name": "127.0.0.1", "destination_service_namespace": "unknown"}); !ok || !strings.HasSuffix(l, " 1") {
		t.Errorf("cluster without metadata: want the Host fallback, got %q in\n%s", l, text)
	}

	// TCP on the destination side uses the same metadata.
	to, err := server.TCP(&tcpv3.TcpProxy{StatPrefix: "inbound|27017||", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "inbound|27017||"}})
	if err != nil {
		t.Fatal(err)
	}
	c := &tcp.Conn{Cluster: "inbound|27017||", Start: time.Now()}
	to.Open(c)
	to.Close(c)
	if l, ok := series(scrape(t, server), "istio_tcp_connections_opened_total", map[string]string{"reporter": "destination",
		"destination_service": "mongodb.default.svc.cluster.local", "destination_service_name": "mongodb"}); !ok || !strings.HasSuffix(l, " 1") {
		t.Errorf("tcp: got %q", l)
	}
}

// The source reporter keeps naming the service from the outbound cluster
// and the lookup is not consulted for it.
func TestSourceReporterIgnoresClusterService(t *testing.T) {
	calls := 0
	client := New(Options{Node: meta("productpage-v1", "productpage", "v1"),
		ClusterService: func(string) (string, string, string, bool) {
			calls++
			return "wrong.default.svc.cluster.local", "wrong", "default", true
		}})
	defer client.Close()
	o, err := client.HTTP(&hcmv3.HttpConnectionManager{StatPrefix: "explicit_http_proxy"})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, o, "reviews:9080", "outbound|9080||reviews.default.svc.cluster.local")
	if _, ok := series(scrape(t, client), "istio_requests_total", map[string]string{"reporter": "source",
		"destination_service": "reviews.default.svc.cluster.local"}); !ok || calls != 0 {
		t.Errorf("source series wrong (lookup calls %d):\n%s", calls, scrape(t, client))
	}
}

// Recording a request of an existing series does not allocate on the
// metadata path.
func TestDestinationServiceNoAllocs(t *testing.T) {
	server := New(Options{Node: meta("productpage-v1", "productpage", "v1"), ClusterService: inboundServices})
	defer server.Close()
	info := &filter.Info{Status: 200, Authority: "127.0.9.3:8080", Cluster: "inbound|9080||"}
	server.metrics.recordHTTP(info, true, nil, false, "")
	if n := testing.AllocsPerRun(100, func() { server.metrics.recordHTTP(info, true, nil, false, "") }); n != 0 {
		t.Errorf("recordHTTP allocates %.1f per request", n)
	}
}
