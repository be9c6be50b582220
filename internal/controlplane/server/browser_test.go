package server_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/controlplane/server"
)

// TestBrowserCrossSite opens, in a real headless Chromium, a page of
// another site that attacks the control plane the ways a page can: a
// no-cors fetch POST with text/plain (a CORS "simple" request, sent with
// no preflight), an auto-submitted form with enctype text/plain, and a
// read through a name that resolves to the control plane (DNS rebinding,
// simulated with Chromium's host resolver rules). Nothing may be applied,
// and the control plane must have seen and refused the requests.
func TestBrowserCrossSite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a headless browser")
	}
	var browser string
	for _, b := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(b); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Skip("no Chromium installed (apt-get install chromium)")
	}
	s, logs := startWith(t, map[string]string{"bookinfo.yaml": bookinfo}, server.Options{TokenDir: "-"})
	_, cpPort, _ := net.SplitHostPort(s.MonitoringAddr())
	apply := "http://" + s.MonitoringAddr() + server.PathApply
	yaml := strings.ReplaceAll(vsYAML, "\n", `\n`)

	page := fmt.Sprintf(`<!doctype html><html><body>
<form id=f method=POST enctype="text/plain" action="%[1]s" target=sink><input name="%[2]s" value=""></form>
<iframe name=sink></iframe>
<script>
fetch("%[1]s", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: "%[2]s"}).catch(() => {});
fetch("http://rebind.test:%[3]s/api/v1/config?kind=Secret", {mode: "no-cors"}).catch(() => {});
document.getElementById("f").submit();
</script></body></html>`, apply, yaml, cpPort)
	evil, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no second loopback address: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, page)
	})}
	go srv.Serve(evil)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+t.TempDir(),
		// The attacker's site is a name of its own (evil.test); rebind.test
		// stands for the attacker's name after its DNS answer flipped.
		"--host-resolver-rules=MAP rebind.test 127.0.0.1, MAP evil.test 127.0.0.2",
		"--virtual-time-budget=5000", "--dump-dom", "http://evil.test:"+strings.Split(evil.Addr().String(), ":")[1]+"/")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	eventually(t, "the browser's requests reached the control plane and were refused", func() (bool, string) {
		l := logs.String()
		return strings.Count(l, `reason="cross-site request refused`) >= 2 && strings.Contains(l, `reason="Host \"rebind.test:`), l
	})
	if exists(t, s, "VirtualService", "reviews") {
		t.Fatal("a web page changed the mesh's config")
	}
}
