package helloworld

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHello(t *testing.T) {
	srv := httptest.NewServer(New("v2", "helloworld-v2-abc"))
	defer srv.Close()
	tests := []struct {
		path string
		code int
		body string
	}{
		{"/hello", 200, "Hello version: v2, instance: helloworld-v2-abc\n"},
		{"/health", 200, "ok\n"},
		{"/other", 404, "404 page not found\n"},
	}
	for _, tc := range tests {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || string(b) != tc.body {
			t.Errorf("%s: %d %q", tc.path, resp.StatusCode, b)
		}
	}
}
