package bootstrap

import (
	"io"
	"strings"
	"testing"
)

// --http2-server (or WEFT_HTTP2_SERVER) picks the downstream HTTP/2
// server; anything but weft or xnet is an error naming the flag.
func TestHTTP2ServerFlag(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want bool
	}{
		{nil, nil, true},
		{[]string{"--http2-server", "xnet"}, nil, false},
		{nil, map[string]string{"WEFT_HTTP2_SERVER": "xnet"}, false},
		{[]string{"--http2-server", "weft"}, map[string]string{"WEFT_HTTP2_SERVER": "xnet"}, true},
	} {
		c, err := Parse("sidecar", tc.args, env(tc.env), io.Discard)
		if err != nil {
			t.Fatalf("%v %v: %v", tc.args, tc.env, err)
		}
		if c.OwnHTTP2 != tc.want {
			t.Errorf("%v %v: OwnHTTP2 %v, want %v", tc.args, tc.env, c.OwnHTTP2, tc.want)
		}
	}
	if _, err := Parse("sidecar", []string{"--http2-server", "h2o"}, env(nil), io.Discard); err == nil ||
		!strings.Contains(err.Error(), "http2-server") {
		t.Errorf("bad value: got %v, want an error naming --http2-server", err)
	}
}
