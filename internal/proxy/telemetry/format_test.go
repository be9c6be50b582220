package telemetry

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/accesslog"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/rflag"
)

var start = time.Date(2026, 11, 21, 5, 1, 2, 345e6, time.UTC)

func baseInfo() *filter.Info {
	return &filter.Info{Start: start, Duration: 7 * time.Millisecond, Method: "GET", Path: "/status/418",
		Protocol: "HTTP/1.1", Authority: "httpbin:8000", UserAgent: "curl/8.0", RequestID: "req-1",
		Downstream: &downstream.Info{Local: netip.MustParseAddrPort("127.0.10.7:15080"),
			OriginalDst: netip.MustParseAddrPort("127.0.10.7:15080"), Remote: netip.MustParseAddrPort("127.0.11.7:40000")}}
}

func TestDefaultTextFormat(t *testing.T) {
	f, err := CompileFormat(accesslog.TextFormat)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		setup func(*filter.Info)
		tcp   bool
		want  map[int]string
	}{
		{"200 via upstream", func(i *filter.Info) {
			i.Status, i.Details, i.BytesOut, i.ServiceTime = 200, "via_upstream", 135, 4*time.Millisecond
			i.Cluster, i.Host, i.RouteName = "outbound|8000||httpbin.default.svc.cluster.local", "127.0.10.3:8080", "default"
		}, false, map[int]string{meshtest.LogRequestLine: "GET /status/418 HTTP/1.1", meshtest.LogCode: "200", meshtest.LogFlags: "-", meshtest.LogDetails: "via_upstream",
			meshtest.LogTermination: "-", meshtest.LogFailure: "-", meshtest.LogBytesIn: "0", meshtest.LogBytesOut: "135", meshtest.LogDuration: "7", meshtest.LogServiceTime: "4", meshtest.LogXFF: "-",
			meshtest.LogUserAgent: "curl/8.0", meshtest.LogRequestID: "req-1", meshtest.LogAuthority: "httpbin:8000", meshtest.LogUpstreamHost: "127.0.10.3:8080",
			meshtest.LogCluster: "outbound|8000||httpbin.default.svc.cluster.local", meshtest.LogUpstreamLocal: "-",
			meshtest.LogDownstreamLocal: "127.0.10.7:15080", meshtest.LogDownstreamRemote: "127.0.11.7:40000", meshtest.LogSNI: "-", meshtest.LogRoute: "default"}},
		{"503 UO", func(i *filter.Info) {
			i.Status, i.Flags, i.Details, i.BytesOut = 503, rflag.UO, "upstream_reset_before_response_started{overflow}", 81
			i.Cluster, i.RouteName = "outbound|8000||httpbin.default.svc.cluster.local", "default"
		}, false, map[int]string{meshtest.LogCode: "503", meshtest.LogFlags: "UO", meshtest.LogDetails: "upstream_reset_before_response_started{overflow}",
			meshtest.LogBytesOut: "81", meshtest.LogServiceTime: "-", meshtest.LogUpstreamHost: "-", meshtest.LogCluster: "outbound|8000||httpbin.default.svc.cluster.local"}},
		{"404 NR", func(i *filter.Info) {
			i.Status, i.Flags, i.Details = 404, rflag.NR, "route_not_found"
		}, false, map[int]string{meshtest.LogCode: "404", meshtest.LogFlags: "NR", meshtest.LogDetails: "route_not_found", meshtest.LogCluster: "-", meshtest.LogRoute: "-", meshtest.LogUpstreamHost: "-"}},
		{"504 UT", func(i *filter.Info) {
			i.Status, i.Flags, i.Details, i.BytesOut = 504, rflag.UT, "response_timeout", 24
			i.Cluster, i.Host = "outbound|9080||reviews.default.svc.cluster.local", "127.0.10.4:9080"
		}, false, map[int]string{meshtest.LogCode: "504", meshtest.LogFlags: "UT", meshtest.LogDetails: "response_timeout", meshtest.LogBytesOut: "24",
			meshtest.LogUpstreamHost: "127.0.10.4:9080"}},
		{"tcp", func(i *filter.Info) {
			*i = filter.Info{Start: start, Duration: 30 * time.Millisecond, BytesIn: 12, BytesOut: 16, Cluster: "inbound|9000||",
				Host: "127.0.11.9:9000", Downstream: i.Downstream}
		}, true, map[int]string{meshtest.LogRequestLine: "- - -", meshtest.LogCode: "0", meshtest.LogFlags: "-", meshtest.LogDetails: "-", meshtest.LogBytesIn: "12", meshtest.LogBytesOut: "16",
			meshtest.LogDuration: "30", meshtest.LogServiceTime: "-", meshtest.LogUserAgent: "-", meshtest.LogRequestID: "-", meshtest.LogAuthority: "-", meshtest.LogUpstreamHost: "127.0.11.9:9000",
			meshtest.LogCluster: "inbound|9000||", meshtest.LogUpstreamLocal: "127.0.10.9:41000", meshtest.LogRoute: "-"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := baseInfo()
			c.setup(in)
			e := &Entry{Info: in, TCP: c.tcp}
			if c.tcp {
				e.UpstreamLocal = "127.0.10.9:41000"
			}
			line := string(f.AppendText(nil, e))
			if !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
				t.Fatalf("want one line ending in a newline: %q", line)
			}
			got := meshtest.AccessLogFields(line)
			if len(got) != meshtest.LogFieldCount {
				t.Fatalf("%d fields, want %d: %q", len(got), meshtest.LogFieldCount, line)
			}
			if got[meshtest.LogTime] != "2026-11-21T05:01:02.345Z" {
				t.Errorf("start time %q", got[meshtest.LogTime])
			}
			for i, w := range c.want {
				if got[i] != w {
					t.Errorf("field %d = %q, want %q (line %q)", i, got[i], w, line)
				}
			}
		})
	}
}

func TestJSONFormat(t *testing.T) {
	j, err := CompileJSON(accesslog.JSONFormat())
	if err != nil {
		t.Fatal(err)
	}
	in := baseInfo()
	in.Status, in.Flags, in.BytesOut = 503, rflag.UF|rflag.URX, 91
	in.RequestHeader = http.Header{}
	var m map[string]any
	b := j.AppendJSON(nil, &Entry{Info: in})
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if m["response_code"] != float64(503) || m["response_flags"] != "UF,URX" || m["bytes_sent"] != float64(91) ||
		m["method"] != "GET" || m["upstream_host"] != nil || m["authority"] != "httpbin:8000" {
		t.Errorf("unexpected JSON: %s", b)
	}
}

func TestCompileFormatErrors(t *testing.T) {
	for _, s := range []string{"%NOPE%", "%REQ()%", "%START_TIME", "%REQ(x):abc%", "%BYTES_SENT(x)%"} {
		if _, err := CompileFormat(s); err == nil {
			t.Errorf("%q: want an error", s)
		}
	}
	f, err := CompileFormat("%REQ(X-CUSTOM):3% %% %RESP(X-R)%\n")
	if err != nil {
		t.Fatal(err)
	}
	in := baseInfo()
	in.RequestHeader = http.Header{"X-Custom": {"abcdef"}}
	in.ResponseHeader = http.Header{"X-R": {"r"}}
	if got := string(f.AppendText(nil, &Entry{Info: in})); got != "abc % r\n" {
		t.Errorf("got %q", got)
	}
}

func TestAbsoluteURIPath(t *testing.T) {
	f, _ := CompileFormat("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%")
	for in, want := range map[string]string{"http://httpbin:8000/get?a=1": "/get?a=1", "http://h": "/", "/x": "/x"} {
		i := baseInfo()
		i.Path = in
		if got := string(f.AppendText(nil, &Entry{Info: i})); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}
