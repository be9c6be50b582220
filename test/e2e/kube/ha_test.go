package kube_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/internal/controlplane/inject"
	"github.com/weftmesh/weft/internal/controlplane/kube"
	"github.com/weftmesh/weft/internal/kubetest"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/test/e2e/kit"
)

// This package's own loopback block: control planes on 127.0.62.1 and
// .2, the client sidecar on .3, the server app on .4. The server sidecar
// binds the host's address: an EndpointSlice may not hold a loopback one.
const (
	cpAIP, cpBIP = "127.0.62.1", "127.0.62.2"
	sleepIP      = "127.0.62.3"
	httpbinAppIP = "127.0.62.4"
)

// freePortOn reserves nothing: it returns a port free on ip right now.
func freePortOn(t *testing.T, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Skipf("cannot bind %s: %v", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// controlPlaneReplica is one `weft control-plane --kubeconfig` process.
type controlPlaneReplica struct {
	id, secure, monitoring string
	p                      *kit.Proc
}

// startReplica runs a replica whose xDS+CA port is secure (ip:port).
func startReplica(t *testing.T, env *kubetest.Env, sys, id, secure, revision string) *controlPlaneReplica {
	t.Helper()
	ip, _, _ := net.SplitHostPort(secure)
	r := &controlPlaneReplica{id: id, secure: secure, monitoring: net.JoinHostPort(ip, strconv.Itoa(freePortOn(t, ip)))}
	served := make(chan struct{})
	var once sync.Once
	r.p = start(t, "weft", func(l string) {
		if strings.Contains(l, "control plane serving") {
			once.Do(func() { close(served) })
		}
	}, "control-plane", "--kubeconfig", env.Kubeconfig, "--system-namespace", sys, "--replica-id", id, "--leader-lease", "3s",
		"--secure-address", r.secure, "--xds-address", net.JoinHostPort(ip, "0"), "--monitoring-address", r.monitoring,
		"--webhook-address", net.JoinHostPort(ip, strconv.Itoa(freePortOn(t, ip))), "--revision", revision, "--debounce", "20ms")
	select {
	case <-served:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start", id)
	}
	return r
}

// proxies lists the proxies connected to the replica, by workload, with
// their verified identities.
func (r *controlPlaneReplica) proxies() (map[string]string, error) {
	resp, err := http.Get("http://" + r.monitoring + "/api/v1/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Proxies []struct{ Workload, Identity string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range body.Proxies {
		out[p.Workload] = p.Identity
	}
	return out, nil
}

// TestLeaderKilledUnderLoad is issue 13's HA acceptance: two control plane
// processes against one API server; a sidecar pair (weft-proxy processes
// whose workloads are a Pod, Service and EndpointSlice, with identities
// from TokenRequest tokens checked by TokenReview) carries a request loop
// over mutual TLS; the leader is killed with SIGKILL mid-loop. The other
// replica takes the Lease, the proxies (given both replicas' addresses)
// reconnect to it, its config reaches them, the webhook caBundle is
// restored to the same trust bundle and the same root is published to a
// new namespace, and not one request fails.
func TestLeaderKilledUnderLoad(t *testing.T) {
	env := kubetest.Shared(t)
	ctx := context.Background()
	applyCRDs(t, env)
	sys := env.Namespace(t, nil)
	ns := env.Namespace(t, nil)
	kc := env.Client
	ip := hostIP(t)

	// The injector's configuration, whose caBundle the leader keeps.
	hookURL := "https://" + cpAIP + ":1/inject"
	mwc := inject.Webhooks("ha", admissionregv1.WebhookClientConfig{URL: &hookURL})
	mwcs := kc.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := mwcs.Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mwcs.Delete(context.Background(), mwc.Name, metav1.DeleteOptions{}) })
	caBundle := func() string {
		got, err := mwcs.Get(ctx, mwc.Name, metav1.GetOptions{})
		if err != nil || len(got.Webhooks) == 0 {
			return ""
		}
		return string(got.Webhooks[0].ClientConfig.CABundle)
	}

	// Replica a starts alone and leads; the proxies can only reach it.
	cpA := startReplica(t, env, sys, "cp-a", net.JoinHostPort(cpAIP, strconv.Itoa(freePortOn(t, cpAIP))), "ha")
	holder := func() string { h, _ := kube.Leader(ctx, kc, sys); return h }
	meshtest.Eventually(t, "cp-a leads", 30*time.Second, func() error {
		if h := holder(); h != "cp-a" {
			return fmt.Errorf("holder %q", h)
		}
		return nil
	})
	secret, err := kc.CoreV1().Secrets(sys).Get(ctx, kube.CASecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root := string(secret.Data["root-cert.pem"])
	dir := t.TempDir()
	rootFile := filepath.Join(dir, "root-cert.pem")
	if err := os.WriteFile(rootFile, []byte(root), 0o644); err != nil {
		t.Fatal(err)
	}
	meshtest.Eventually(t, "webhook caBundle set by cp-a", 30*time.Second, func() error {
		if !strings.Contains(caBundle(), strings.TrimSpace(root)) {
			return errors.New("caBundle lacks the root")
		}
		return nil
	})

	// The workloads: httpbin (a Pod behind a Service, endpoint from an
	// EndpointSlice) and sleep, each with its own service account.
	port := freePortOn(t, ip)
	for _, sa := range []string{"sleep", "httpbin"} {
		if _, err := kc.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kc.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "httpbin"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "httpbin"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 8000, TargetPort: intstr.FromInt32(int32(port))}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := kc.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "httpbin", Labels: map[string]string{"app": "httpbin", "security.istio.io/tlsMode": "istio"}},
		Spec:       corev1.PodSpec{ServiceAccountName: "httpbin", Containers: []corev1.Container{{Name: "app", Image: "httpbin"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if _, err := kc.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	portName, p32, yes := "http", int32(port), true
	if _, err := kc.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "httpbin-1", Labels: map[string]string{discoveryv1.LabelServiceName: "httpbin"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &p32}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &yes},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "httpbin", Namespace: ns}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := func(sa string) string {
		exp := int64(3600)
		tr, err := kc.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authv1.TokenRequest{
			Spec: authv1.TokenRequestSpec{Audiences: []string{"istio-ca"}, ExpirationSeconds: &exp}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, sa+".token")
		if err := os.WriteFile(f, []byte(tr.Status.Token), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}

	// httpbin's app echoes the client certificate header its sidecar sets.
	app, err := net.Listen("tcp", net.JoinHostPort(httpbinAppIP, strconv.Itoa(port)))
	if err != nil {
		t.Skipf("cannot bind the app: %v", err)
	}
	appSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-Client-Cert"))
	})}
	go appSrv.Serve(app)
	t.Cleanup(func() { appSrv.Close() })

	// Both sidecars are given both replicas; b is not running yet.
	cpBSecure := net.JoinHostPort(cpBIP, strconv.Itoa(freePortOn(t, cpBIP)))
	servers := cpA.secure + "," + cpBSecure
	proxyPort := freePortOn(t, sleepIP)
	common := []string{"--xds", servers, "--root-cert", rootFile, "--namespace", ns,
		"--admin-port", "0", "--health-port", "0", "--stats-port", "0", "--merged-port", "0"}
	start(t, "weft-proxy", nil, append([]string{"sidecar", "--name", "httpbin", "--service-account", "httpbin", "--labels", "app=httpbin",
		"--token-file", token("httpbin"), "--ip", ip, "--app-address", httpbinAppIP}, common...)...)
	start(t, "weft-proxy", nil, append([]string{"sidecar", "--name", "sleep", "--service-account", "sleep", "--labels", "app=sleep",
		"--token-file", token("sleep"), "--ip", sleepIP, "--proxy-port", strconv.Itoa(proxyPort)}, common...)...)

	pu, _ := url.Parse("http://" + net.JoinHostPort(sleepIP, strconv.Itoa(proxyPort)))
	keepAlive := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	fresh := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu), DisableKeepAlives: true}}
	wantPeer := "URI=spiffe://cluster.local/ns/" + ns + "/sa/sleep"
	call := func(c *http.Client) (string, error) {
		resp, err := c.Get("http://httpbin." + ns + ":8000/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(b), wantPeer) {
			return resp.Header.Get("x-served-by"), fmt.Errorf("status %d, body %q", resp.StatusCode, b)
		}
		return resp.Header.Get("x-served-by"), nil
	}
	meshtest.Eventually(t, "sleep -> httpbin over mTLS with sleep's identity", 30*time.Second, func() error {
		_, err := call(fresh)
		return err
	})

	// Replica b joins; a holds the Lease and the proxies.
	cpB := startReplica(t, env, sys, "cp-b", cpBSecure, "ha")
	if got, err := cpA.proxies(); err != nil || len(got) != 2 {
		t.Fatalf("proxies on cp-a: %v %v", got, err)
	}

	// The loop: one request at a time, alternating a kept-alive connection
	// and a new one, until stopped; every failure is kept.
	var ok, failed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	var servedBy sync.Map
	stop := make(chan struct{})
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c := keepAlive
			if i%2 == 1 {
				c = fresh
			}
			by, err := call(c)
			if err != nil {
				failed.Add(1)
				failMu.Lock()
				failures = append(failures, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
				failMu.Unlock()
				continue
			}
			servedBy.Store(by, true)
			ok.Add(1)
		}
	}()
	meshtest.Eventually(t, "50 requests before the kill", 30*time.Second, func() error {
		if n := ok.Load(); n < 50 {
			return fmt.Errorf("%d ok", n)
		}
		return nil
	})

	killed := time.Now()
	okAtKill := ok.Load()
	cpA.p.Cmd.Process.Signal(syscall.SIGKILL)
	// Someone re-applies the webhook configuration without a caBundle
	// while there is no leader: the new one must restore it.
	if got, err := mwcs.Get(ctx, mwc.Name, metav1.GetOptions{}); err == nil {
		for i := range got.Webhooks {
			got.Webhooks[i].ClientConfig.CABundle = nil
		}
		if _, err := mwcs.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	meshtest.Eventually(t, "both proxies reconnect to cp-b with their identities", 30*time.Second, func() error {
		got, err := cpB.proxies()
		if err != nil {
			return err
		}
		for _, w := range []string{"sleep", "httpbin"} {
			if id := got[w+"."+ns]; id != "spiffe://cluster.local/ns/"+ns+"/sa/"+w {
				return fmt.Errorf("%s: identity %q (connected: %v)", w, id, got)
			}
		}
		return nil
	})
	reconnected := time.Since(killed)
	meshtest.Eventually(t, "cp-b takes the Lease", 30*time.Second, func() error {
		if h := holder(); h != "cp-b" {
			return fmt.Errorf("holder %q", h)
		}
		return nil
	})
	tookLease := time.Since(killed)
	meshtest.Eventually(t, "cp-b restores the webhook caBundle to the same bundle", 30*time.Second, func() error {
		if !strings.Contains(caBundle(), strings.TrimSpace(root)) {
			return errors.New("caBundle lacks the root")
		}
		return nil
	})
	after, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "after-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kc.CoreV1().Namespaces().Delete(context.Background(), after.Name, metav1.DeleteOptions{}) })
	meshtest.Eventually(t, "cp-b publishes the same root to a new namespace", 30*time.Second, func() error {
		cm, err := kc.CoreV1().ConfigMaps(after.Name).Get(ctx, kube.RootCertMap, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cm.Data[kube.RootCertKey] != root {
			return errors.New("a different root")
		}
		return nil
	})
	if s, err := kc.CoreV1().Secrets(sys).Get(ctx, kube.CASecret, metav1.GetOptions{}); err != nil || !bytes.Equal(s.Data["root-cert.pem"], []byte(root)) {
		t.Fatalf("the CA Secret changed or went: %v", err)
	}

	// cp-b's config reaches the proxies: a VirtualService created now.
	ic, err := istioclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "httpbin"}}
	vs.Spec.Hosts = []string{"httpbin"}
	vs.Spec.Http = []*networkingapi.HTTPRoute{{Route: []*networkingapi.HTTPRouteDestination{{
		Destination: &networkingapi.Destination{Host: "httpbin"},
		Headers:     &networkingapi.Headers{Response: &networkingapi.Headers_HeaderOperations{Set: map[string]string{"x-served-by": "cp-b"}}},
	}}}}
	if _, err := ic.NetworkingV1().VirtualServices(ns).Create(ctx, vs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	meshtest.Eventually(t, "cp-b's VirtualService reaches the client sidecar", 30*time.Second, func() error {
		if _, ok := servedBy.Load("cp-b"); !ok {
			return errors.New("no response routed by it yet")
		}
		return nil
	})
	okAfter := ok.Load()
	meshtest.Eventually(t, "50 more requests", 30*time.Second, func() error {
		if n := ok.Load() - okAfter; n < 50 {
			return fmt.Errorf("%d ok", n)
		}
		return nil
	})
	close(stop)
	<-loopDone
	t.Logf("requests: %d ok (%d before the kill), %d failed; proxies on cp-b %v after the kill, Lease %v (lease 3s)",
		ok.Load(), okAtKill, failed.Load(), reconnected.Round(time.Millisecond), tookLease.Round(time.Millisecond))
	if n := failed.Load(); n > 0 {
		failMu.Lock()
		t.Errorf("%d requests failed across the failover: %s", n, strings.Join(failures[:min(len(failures), 10)], "; "))
		failMu.Unlock()
	}
}
