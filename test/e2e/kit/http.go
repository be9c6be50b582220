package kit

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Response is what a request got: Status -1 and the error in Body when it
// got no response at all.
type Response struct {
	Status  int
	Body    string
	Header  http.Header
	Elapsed time.Duration
}

// Get fetches rawURL with client and headers; a "Host" header sets the
// request's authority.
func Get(t testing.TB, client *http.Client, rawURL string, hdr map[string]string) Response {
	t.Helper()
	req, err := http.NewRequest("GET", rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if strings.EqualFold(k, "host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return Response{Status: -1, Body: err.Error(), Elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Body: string(b), Header: resp.Header, Elapsed: time.Since(start)}
}

// Direct is a client that ignores HTTP_PROXY settings.
var Direct = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}}

// ProxyClient sends every request through the HTTP proxy at proxyURL (a
// sidecar's proxy port, the way its app does with HTTP_PROXY).
func ProxyClient(proxyURL string) *http.Client {
	u, err := url.Parse(proxyURL)
	if err != nil {
		panic(err)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u), MaxIdleConnsPerHost: 16}}
}
