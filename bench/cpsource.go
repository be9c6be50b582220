package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/weftmesh/weft/internal/install"
	"github.com/weftmesh/weft/internal/kubetest"
)

// Config sources the control-plane benchmark runs on: the same services,
// proxies and changes, from a watched directory or from a Kubernetes API
// server (a real kube-apiserver and etcd from internal/kubetest).
const (
	sourceDir  = "dir"
	sourceKube = "kube"
)

// cpRun is a control plane on one source, with the way to make a change.
type cpRun struct {
	*controlPlane
	// apply makes change kind number round (see cpChange) on the source.
	apply func(ctx context.Context, kind string, round int) error
	close func()
}

// gcEnv makes the Go runtime print a line per GC (to the process log),
// from which heapLiveMB reads the live heap.
var gcEnv = []string{"GODEBUG=gctrace=1"}

// startCPRun starts `weft control-plane` on source holding services
// Services (each with an endpoint).
func startCPRun(ctx context.Context, source, weft, dir, label string, services int) (*cpRun, error) {
	switch source {
	case sourceDir:
		cp, err := startControlPlaneEnv(ctx, weft, dir, label, map[string]string{"services.yaml": servicesYAML("svc", services)}, gcEnv)
		if err != nil {
			return nil, err
		}
		return &cpRun{controlPlane: cp, close: cp.proc.stop,
			apply: func(_ context.Context, kind string, round int) error {
				file, yaml, _, _ := cpChange(kind, round, services)
				return cp.write(file, yaml)
			}}, nil
	case sourceKube:
		return startKubeCPRun(ctx, weft, dir, label, services)
	}
	return nil, fmt.Errorf("unknown config source %q (dir or kube)", source)
}

// startKubeCPRun starts an API server, creates the services there as
// Services with an EndpointSlice each (what Kubernetes' controllers would
// have made for a one-pod Deployment), and runs the control plane with
// --kubeconfig. The changes are cpChange's, made the Kubernetes way: a
// new cluster is one more Service and EndpointSlice (two creates), a route
// the VirtualService server-side applied, an endpoint move an update of
// svc-0000's EndpointSlice.
func startKubeCPRun(ctx context.Context, weft, dir, label string, services int) (*cpRun, error) {
	if err := kubetest.Binaries(kubetest.BinDir()); err != nil {
		return nil, err
	}
	env, err := kubetest.Start(ctx, kubetest.Options{Dir: dirFor(dir, label+"-kube")})
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			env.Stop()
		}
	}()
	a, err := install.NewApplier(env.Config)
	if err != nil {
		return nil, err
	}
	crds, err := install.Decode(install.CRDs)
	if err != nil {
		return nil, err
	}
	if _, err := a.Apply(ctx, crds, false); err != nil {
		return nil, fmt.Errorf("CRDs: %w", err)
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 2000, 4000 // setup only; the control plane has its own client
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	add := func(ctx context.Context, name string, i int) error {
		if _, err := kc.CoreV1().Services("default").Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
				Ports: []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080)}}},
		}, metav1.CreateOptions{}); err != nil {
			return err
		}
		port, portName, yes := int32(8080), "http", true
		_, err := kc.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{fmt.Sprintf("198.18.%d.%d", 1+i/250, 1+i%250)},
				Conditions: discoveryv1.EndpointConditions{Ready: &yes}}},
		}, metav1.CreateOptions{})
		return err
	}
	// The services as servicesYAML names them, 16 creators at a time.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := add(ctx, fmt.Sprintf("svc-%04d", i), i); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range services {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, fmt.Errorf("creating services: %w", err)
	default:
	}

	xp, err := freePort(cpIP)
	if err != nil {
		return nil, err
	}
	mp, err := freePort(cpIP)
	if err != nil {
		return nil, err
	}
	// No config directory; its state directory holds the admin token
	// that profiles need.
	cp := &controlPlane{configDir: filepath.Join(dir, label+"-config"), xds: net.JoinHostPort(cpIP, strconv.Itoa(xp)), monitoring: net.JoinHostPort(cpIP, strconv.Itoa(mp))}
	cp.proc, err = start(dir, label, gcEnv, weft, "control-plane", "--kubeconfig", env.Kubeconfig, "--state-dir", cpStateDir(cp.configDir),
		"--xds-address", cp.xds, "--secure-address", net.JoinHostPort(cpIP, "0"), "--monitoring-address", cp.monitoring, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, "http://"+cp.monitoring+"/healthz/ready", "", cp.proc, 60*time.Second); err != nil {
		cp.proc.stop()
		return nil, fmt.Errorf("control plane: %w", err)
	}
	ok = true
	return &cpRun{controlPlane: cp,
		apply: func(ctx context.Context, kind string, round int) error {
			_, yaml, _, text := cpChange(kind, round, services)
			switch kind {
			case "route":
				objs, err := install.Decode([]byte(yaml))
				if err != nil {
					return err
				}
				_, err = a.Apply(ctx, objs, false)
				return err
			case "endpoint":
				sl, err := kc.DiscoveryV1().EndpointSlices("default").Get(ctx, "svc-0000-1", metav1.GetOptions{})
				if err != nil {
					return err
				}
				sl.Endpoints[0].Addresses = []string{text}
				_, err = kc.DiscoveryV1().EndpointSlices("default").Update(ctx, sl, metav1.UpdateOptions{})
				return err
			}
			return add(ctx, fmt.Sprintf("change-%d-0000", round), services+round)
		},
		close: func() { cp.proc.stop(); env.Stop() },
	}, nil
}

func dirFor(parent, name string) string {
	d := parent + "/" + name
	os.MkdirAll(d, 0o755)
	return d
}

// gcLine is the heap part of a gctrace line: "45->46->23 MB" (heap at GC
// start, at GC end, live after marking).
var gcLine = regexp.MustCompile(`(\d+)->(\d+)->(\d+) MB`)

// heapLiveMB reads a process log with gctrace lines and returns the live
// heap after the last GC and the largest one seen (MB).
func heapLiveMB(logPath string) (last, peak float64) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return 0, 0
	}
	for _, m := range gcLine.FindAllSubmatch(b, -1) {
		v, _ := strconv.ParseFloat(string(m[3]), 64)
		last, peak = v, max(peak, v)
	}
	return last, peak
}
