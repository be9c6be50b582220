package command

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestIstioURL(t *testing.T) {
	tests := []struct {
		env  map[string]string
		name string
		want string
	}{
		{nil, "details", "http://details:9080"},
		{map[string]string{"DETAILS_SERVICE_PORT": "9081"}, "details", "http://details:9081"},
		{map[string]string{"REVIEWS_HOSTNAME": "reviews-canary", "SERVICES_DOMAIN": "bookinfo.svc.cluster.local"}, "reviews", "http://reviews-canary.bookinfo.svc.cluster.local:9080"},
		{map[string]string{"RATINGS_SERVICE_PORT": "9080", "DETAILS_SERVICE_PORT": "1"}, "ratings", "http://ratings:9080"},
	}
	for _, tc := range tests {
		got := istioURL(func(k string) string { return tc.env[k] }, tc.name)
		if got != tc.want {
			t.Errorf("istioURL(%v, %s) = %s, want %s", tc.env, tc.name, got, tc.want)
		}
	}
}

func TestParseSleep(t *testing.T) {
	tests := []struct {
		in      string
		d       time.Duration
		forever bool
		bad     bool
	}{
		{"infinity", 0, true, false},
		{"5", 5 * time.Second, false, false},
		{"0.5", 500 * time.Millisecond, false, false},
		{"2m", 2 * time.Minute, false, false},
		{"1d", 24 * time.Hour, false, false},
		{"3600s", time.Hour, false, false},
		{"-1", 0, false, true},
		{"soon", 0, false, true},
		{"", 0, false, true},
	}
	for _, tc := range tests {
		d, forever, err := parseSleep(tc.in)
		if (err != nil) != tc.bad || d != tc.d || forever != tc.forever {
			t.Errorf("parseSleep(%q) = %v %v %v", tc.in, d, forever, err)
		}
	}
}

// Started through a symlink named curl or sleep (the curl image), the
// binary is that tool; as weft-sample it takes the app's name first.
func TestMainByArgv0(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"origin": "`+r.RemoteAddr+`"}`)
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := Main("/usr/bin/curl", []string{"-sS", srv.URL + "/ip"}, strings.NewReader(""), &out, &errb); code != 0 || !strings.Contains(out.String(), `"origin"`) {
		t.Fatalf("curl: exit %d out %q err %q", code, out.String(), errb.String())
	}
	out.Reset()
	start := time.Now()
	if code := Main("/bin/sleep", []string{"0.05"}, strings.NewReader(""), &out, &errb); code != 0 || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("sleep 0.05: exit %d after %v, err %q", code, time.Since(start), errb.String())
	}
	errb.Reset()
	if code := Main("/bin/sleep", []string{"forever"}, strings.NewReader(""), &out, &errb); code != 1 || !strings.Contains(errb.String(), "invalid time interval") {
		t.Fatalf("sleep forever: exit %d err %q", code, errb.String())
	}
	errb.Reset()
	if code := Main("weft-sample", []string{"no-such-app"}, strings.NewReader(""), &out, &errb); code == 0 {
		t.Fatalf("weft-sample no-such-app: exit 0, err %q", errb.String())
	}
}
