package tasks

import (
	"testing"

	"github.com/weftmesh/weft/internal/demo"
	"github.com/weftmesh/weft/test/e2e/bookinfo"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// The Bookinfo task checks live in test/e2e/bookinfo, shared with the
// real-node suite (test/e2e/node); demoTarget runs them on the demo.
var (
	allV1          = bookinfo.AllV1
	reviewsVersion = bookinfo.ReviewsVersion
	reviewsV3      = bookinfo.ReviewsV3
	star           = bookinfo.Star
)

// demoTarget is the task mesh as a bookinfo.Target.
type demoTarget struct{ m *demo.Mesh }

func (d demoTarget) Apply(t *testing.T, yaml string) { weft.Apply(t, yaml) }

func (d demoTarget) Page(t *testing.T, user string) kit.Response { return productpage(t, user) }

func (d demoTarget) FromCurl(t *testing.T, rawURL string, hdr map[string]string) kit.Response {
	return fromWorkload(t, d.m, "curl", rawURL, hdr)
}

func (d demoTarget) Plain(t *testing.T, path string) kit.Response {
	return plainToHTTPBin(t, d.m, path)
}

func (d demoTarget) CurlID() string { return curlID(d.m) }

func (d demoTarget) HTTPBinStats(t *testing.T) kit.Response {
	return kit.Get(t, direct, "http://"+d.m.Workload("httpbin-v1").IP+":15090/stats/prometheus", nil)
}

// TM-01 Request Routing.
func TestRequestRouting(t *testing.T) { bookinfo.RequestRouting(t, demoTarget{mesh(t)}) }

// TM-02 Fault Injection.
func TestFaultInjection(t *testing.T) { bookinfo.FaultInjection(t, demoTarget{mesh(t)}) }

// TM-03 Traffic Shifting: 50/50 v1/v3 within ±8% over 400 pages, then 100% v3.
func TestTrafficShifting(t *testing.T) { bookinfo.TrafficShifting(t, demoTarget{mesh(t)}) }
